-- Tables the incremental workload changes while the task copies and then syncs them.
CREATE DATABASE `{{db}}`;
USE `{{db}}`;
CREATE TABLE accounts (
  id INT PRIMARY KEY,
  email VARCHAR(64) NOT NULL,
  balance DECIMAL(14,2) NOT NULL,
  note VARCHAR(100) NULL,
  tiny TINYINT UNSIGNED NOT NULL DEFAULT 0,
  med MEDIUMINT NOT NULL DEFAULT 0,
  updated DATETIME(6) NOT NULL,
  seen TIMESTAMP(3) NULL,
  UNIQUE KEY uk_email (email),
  KEY k_balance (balance)
);
INSERT INTO accounts (id, email, balance, note, tiny, med, updated, seen)
  SELECT seq, CONCAT('user', seq, '@example.com'), seq * 1.25, IF(seq % 7 = 0, NULL, CONCAT('note ', seq)),
         seq % 256, CAST(seq * 397 % 16000000 AS SIGNED) - 8000000, '2024-01-01 00:00:00.000001' + INTERVAL seq SECOND,
         IF(seq % 5 = 0, NULL, '2024-02-29 12:00:00.123' + INTERVAL seq MINUTE)
  FROM seq_1_to_20000;
CREATE TABLE events (
  id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY,
  account INT NOT NULL,
  kind ENUM('open', 'pay', 'close') NOT NULL,
  tags SET('a', 'b', 'c') NOT NULL DEFAULT '',
  payload JSON NULL,
  raw VARBINARY(16) NULL,
  at YEAR NULL
);
INSERT INTO events (account, kind, tags, payload, raw, at)
  SELECT seq % 1000, ELT(1 + seq % 3, 'open', 'pay', 'close'), ELT(1 + seq % 4, '', 'a', 'a,c', 'b'),
         JSON_OBJECT('n', seq, 's', 'é😀'), UNHEX(LPAD(HEX(seq), 8, '0')), IF(seq % 9 = 0, 0, 1901 + seq % 200)
  FROM seq_1_to_5000;
CREATE TABLE big (id INT PRIMARY KEY, v INT NOT NULL, pad CHAR(40) NOT NULL DEFAULT 'x');
