# gencxx.awk -v n=N [-v headers="map string ..."] — a large C++ translation
# unit for g++ -fsyntax-only: standard headers, then N generated class
# templates, their instantiations and functions using the containers and
# algorithms. With fewer headers (record.sh --tiny) the code uses fewer of
# them (no regex without <regex>).
BEGIN {
  if (n == "") n = 400
  if (headers == "") headers = "map string vector algorithm regex unordered_map memory functional sstream iostream set list deque tuple optional variant numeric"
  if (headers == "none") { plain(); exit }
  split(headers, h, " ")
  for (i = 1; i in h; i++) have[h[i]] = 1
  for (i = 1; i in h; i++) print "#include <" h[i] ">"
  print "namespace gen {"
  for (i = 0; i < n; i++) {
    printf "template <typename T, int K = %d>\nstruct Node%d {\n", i % 7 + 1, i
    printf "  std::vector<T> items;\n  std::map<std::string, T> byname;\n"
    printf "  std::unordered_map<int, std::vector<std::string>> index;\n"
    printf "  T field%d_a{}; long field%d_b = %d;\n", i, i, i * 3
    printf "  template <typename F> T fold(F f) const { T acc{}; for (auto &x : items) acc = f(acc, x); return acc; }\n"
    printf "  void add(const std::string &s, T v) { byname[s] = v; items.push_back(v * K); index[int(s.size())].push_back(s); }\n"
    printf "  std::optional<T> find(const std::string &s) const { auto it = byname.find(s); if (it == byname.end()) return std::nullopt; return it->second; }\n"
    printf "  std::vector<T> sorted() const { auto v = items; std::sort(v.begin(), v.end(), [](T a, T b) { return b < a; }); return v; }\n"
    printf "};\n"
    t = (i % 3 == 0) ? "int" : (i % 3 == 1) ? "double" : "long"
    printf "inline %s use%d(const std::vector<std::string> &words) {\n", t, i
    printf "  Node%d<%s> node;\n  for (size_t j = 0; j < words.size(); ++j) node.add(words[j], %s(j + %d));\n", i, t, t, i
    printf "  auto s = node.sorted();\n  std::ostringstream os; os << s.size() << node.find(\"w%d\").value_or(0);\n", i
    printf "  std::function<%s(%s, %s)> plus = [](%s a, %s b) { return a + b; };\n", t, t, t, t, t
    printf "  auto tup = std::make_tuple(node.fold(plus), os.str(), std::variant<int, std::string>(%d));\n", i
    if (i % 10 == 0 && ("regex" in have))
      printf "  std::regex re(\"w[0-9]+_%d\"); if (std::regex_match(os.str(), re)) return 0;\n", i
    if (i > 0) printf "  return std::get<0>(tup) + %s(use%d(words));\n}\n", t, i - 1
    else printf "  return std::get<0>(tup);\n}\n"
  }
  print "} // namespace gen"
  printf "int main() { std::vector<std::string> w{\"a\", \"bb\", \"ccc\"}; return int(gen::use%d(w)) & 1; }\n", n - 1
}

# headers=none (record.sh --tiny): no standard headers at all (any one of
# them is 100k+ allocations in cc1plus), only generated templates.
function plain(   i) {
  print "template <typename T, int K> struct Box { T v[K]; T sum() const { T s{}; for (int i = 0; i < K; ++i) s += v[i]; return s; } };"
  for (i = 0; i < n; i++) {
    printf "template <typename T> struct C%d : Box<T, %d> { T extra = %d; template <typename U> U as() const { return U(this->sum() + extra); } };\n", i, i % 5 + 1, i
    printf "inline long f%d(long x) { C%d<long> c{}; C%d<double> d{}; return c.as<long>() + long(d.as<double>()) + x%s; }\n", i, i, i, i ? sprintf(" + f%d(x - 1)", i - 1) : ""
  }
  printf "int main() { return int(f%d(3)) & 1; }\n", n - 1
}
