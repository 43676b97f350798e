// cxx_map.cpp — a C++ program for the preload tests: std::map keyed by
// std::string, string concatenation, vectors that grow, a shared_ptr graph,
// std::unordered_map rehashing, over-aligned objects (operator new with
// align_val_t, served by aligned_alloc). Everything goes through operator new and
// delete, which libstdc++ implements with malloc and free, so under
// LD_PRELOAD=libvmalloc.so it all lands in Vmheap. Output is deterministic.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

struct alignas(64) Line {
    unsigned char bytes[64];
};

struct Node {
    std::string name;
    std::vector<std::shared_ptr<Node>> kids;
};

unsigned long long fnv(const std::string& s, unsigned long long h = 1469598103934665603ull)
{
    for (unsigned char c : s)
        h = (h ^ c) * 1099511628211ull;
    return h;
}

} // namespace

int main()
{
    std::map<std::string, std::vector<int>> index;
    std::string text;
    for (int i = 0; i < 20000; ++i) {
        std::string word = "w" + std::to_string((i * 7919) % 3001);
        word += (i % 3 == 0) ? "-alpha" : (i % 3 == 1 ? "-beta" : "-gamma-long-suffix-to-leave-sso");
        index[word].push_back(i);
        if (i % 10 == 0)
            text += word + ' ';
    }
    unsigned long long h = 0;
    size_t postings = 0;
    for (const auto& kv : index) {
        h = fnv(kv.first, h);
        postings += kv.second.size();
    }
    std::printf("map: %zu keys, %zu postings, first %s, last %s, hash %llx\n", index.size(),
                postings, index.begin()->first.c_str(), index.rbegin()->first.c_str(), h);

    std::vector<std::string> words;
    for (size_t at = 0; at < text.size();) {
        size_t sp = text.find(' ', at);
        words.push_back(text.substr(at, sp - at));
        at = sp + 1;
    }
    std::sort(words.begin(), words.end());
    words.erase(std::unique(words.begin(), words.end()), words.end());
    std::printf("text: %zu bytes, %zu distinct words, hash %llx\n", text.size(), words.size(),
                fnv(text));

    std::unordered_map<int, std::string> um;
    for (int i = 0; i < 50000; ++i)
        um[i * 31] = std::string(static_cast<size_t>(i % 50), static_cast<char>('a' + i % 26));
    size_t chars = 0;
    for (int i = 0; i < 50000; i += 2)
        um.erase(i * 31);
    for (const auto& kv : um)
        chars += kv.second.size();
    std::printf("unordered_map: %zu entries, %zu chars\n", um.size(), chars);

    auto root = std::make_shared<Node>();
    root->name = "root";
    std::vector<std::shared_ptr<Node>> level{root};
    size_t nodes = 1;
    for (int depth = 0; depth < 6; ++depth) {
        std::vector<std::shared_ptr<Node>> next;
        for (auto& n : level)
            for (int k = 0; k < 4; ++k) {
                auto c = std::make_shared<Node>();
                c->name = n->name + "/" + std::to_string(k);
                n->kids.push_back(c);
                next.push_back(c);
                ++nodes;
            }
        level.swap(next);
    }
    std::printf("tree: %zu nodes, a leaf %s\n", nodes, level.back()->name.c_str());

    std::vector<std::unique_ptr<std::vector<double>>> vv;
    double sum = 0;
    for (int i = 0; i < 2000; ++i) {
        vv.emplace_back(new std::vector<double>(static_cast<size_t>(i % 300 + 1), i * 0.5));
        if (i % 3 == 0)
            vv[static_cast<size_t>(i / 2)].reset();
    }
    for (auto& v : vv)
        if (v)
            for (double d : *v)
                sum += d;
    std::printf("vectors: %zu, sum %.1f\n", vv.size(), sum);

    // Over-aligned types: operator new(size, align_val_t), which libstdc++
    // serves with aligned_alloc; delete goes to free.
    size_t misaligned = 0;
    std::vector<std::unique_ptr<Line>> lines;
    for (int i = 0; i < 1000; ++i) {
        lines.emplace_back(new Line());
        misaligned += reinterpret_cast<std::uintptr_t>(lines.back().get()) % 64 != 0;
        if (i % 4 == 0)
            lines[static_cast<size_t>(i / 3)].reset();
    }
    std::vector<Line> packed(777);
    misaligned += reinterpret_cast<std::uintptr_t>(packed.data()) % 64 != 0;
    std::printf("aligned lines: %zu, misaligned %zu\n", lines.size(), misaligned);
    return misaligned != 0;
}
