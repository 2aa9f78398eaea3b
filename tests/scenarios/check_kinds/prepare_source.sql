-- Tables for the verification scenario: one column per kind of difference the checker must
-- see, a composite key, and a table without a key.
CREATE DATABASE `{{db}}`;
USE `{{db}}`;
CREATE TABLE items (
  id INT PRIMARY KEY,
  name VARCHAR(40) NULL,
  note VARCHAR(20) NOT NULL,
  code CHAR(8) NOT NULL,
  amount DECIMAL(12,4) NOT NULL,
  at DATETIME(6) NOT NULL,
  data BLOB,
  doc JSON,
  title VARCHAR(40) CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci NOT NULL,
  ratio FLOAT
);
INSERT INTO items
SELECT seq, IF(seq % 7 = 0, NULL, CONCAT('name-', seq)), CONCAT('note', seq % 100), CONCAT('c', seq % 10),
       seq / 7, TIMESTAMP('2026-01-01 00:00:00') + INTERVAL seq SECOND + INTERVAL (seq % 1000) MICROSECOND,
       UNHEX(SHA2(seq, 256)), JSON_OBJECT('n', seq, 'tags', JSON_ARRAY('a', 'b')), CONCAT('Title ', seq), seq / 3
FROM seq_1_to_5000;
CREATE TABLE pairs (a INT NOT NULL, b VARCHAR(10) NOT NULL, v INT, PRIMARY KEY (a, b));
INSERT INTO pairs SELECT seq % 50, CONCAT('k', seq), seq FROM seq_1_to_1200;
CREATE TABLE log_lines (at DATETIME NOT NULL, line VARCHAR(60));
INSERT INTO log_lines SELECT TIMESTAMP('2026-02-01') + INTERVAL (seq % 40) MINUTE, CONCAT('line ', seq % 30) FROM seq_1_to_300;
