-- A keyed table big enough to be killed in the middle of, and a keyless one copied beside it.
CREATE DATABASE `{{db}}`;
USE `{{db}}`;
CREATE TABLE sbtest (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '',
  KEY k_1 (k)
) ENGINE=InnoDB;
INSERT INTO sbtest (k, c, pad)
  SELECT seq % 10007, CONCAT(MD5(seq), '-', MD5(seq + 1), '-', MD5(seq + 2)), MD5(seq * 7) FROM seq_1_to_250000;
CREATE TABLE events (at DATETIME(6) NOT NULL, kind VARCHAR(16), body VARCHAR(200)) ENGINE=InnoDB;
INSERT INTO events
  SELECT '2024-01-01' + INTERVAL (seq % 1000) SECOND, ELT(1 + seq % 4, 'a', 'b', 'c', 'd'), REPEAT(CHAR(65 + seq % 26), seq % 200)
  FROM seq_1_to_40000;
