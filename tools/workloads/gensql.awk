# gensql.awk -v rows=N — SQL for sqlite3: N single-row INSERTs into two
# tables inside one transaction, an index, then aggregate and join queries.
BEGIN {
  if (rows == "") rows = 30000
  seed = 7
  print "CREATE TABLE person(id INTEGER PRIMARY KEY, name TEXT, city INTEGER, score REAL, note TEXT);"
  print "CREATE TABLE city(id INTEGER PRIMARY KEY, name TEXT, region TEXT);"
  print "BEGIN;"
  cities = int(rows / 100) + 5
  for (i = 0; i < cities; i++)
    printf "INSERT INTO city VALUES(%d, 'city%d', 'region%d');\n", i, i, i % 17
  for (i = 0; i < rows; i++) {
    printf "INSERT INTO person VALUES(%d, 'name%d_%d', %d, %d.%02d, '%s');\n", i, rnd() % 5000, i, rnd() % cities, rnd() % 1000, rnd() % 100, substr("lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor", 1, 10 + rnd() % 60)
  }
  print "COMMIT;"
  print "CREATE INDEX person_city ON person(city, score);"
  print "CREATE INDEX person_name ON person(name);"
  print "SELECT count(*), sum(score), avg(length(note)) FROM person;"
  print "SELECT c.region, count(*), round(avg(p.score), 2), max(p.name) FROM person p JOIN city c ON p.city = c.id GROUP BY c.region ORDER BY 2 DESC;"
  print "SELECT name, score FROM person WHERE city = 3 ORDER BY score DESC LIMIT 5;"
  print "SELECT substr(name, 1, 7) AS k, count(*), group_concat(id) IS NOT NULL FROM person GROUP BY k ORDER BY 2 DESC LIMIT 10;"
  print "UPDATE person SET note = upper(note) || name WHERE score > 500;"
  print "SELECT count(DISTINCT note), sum(length(note)) FROM person;"
  print "DELETE FROM person WHERE id % 3 = 0;"
  print "SELECT count(*) FROM person p JOIN city c ON p.city = c.id WHERE c.region IN ('region1', 'region2');"
}
function rnd() { seed = (seed * 16807) % 2147483647; return seed }
