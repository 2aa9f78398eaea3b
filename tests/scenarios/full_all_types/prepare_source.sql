-- Every MySQL type with min/max/zero/NULL rows, a composite key, a foreign key, generated
-- columns, a keyless table, a latin1 table keyed by a NOT NULL unique key, a 120k-row table
-- and views over views. {{db}} is replaced by the test's own database name.
CREATE DATABASE `{{db}}` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci;
USE `{{db}}`;
SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION', time_zone = '+00:00';

CREATE TABLE all_types (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT, biu BIGINT UNSIGNED,
  d DECIMAL(65,30), d2 DECIMAL(10,2), f FLOAT, db DOUBLE,
  c CHAR(10), vc VARCHAR(255), t TEXT, lt LONGTEXT, vc_latin1 VARCHAR(100) CHARACTER SET latin1,
  b BINARY(16), vb VARBINARY(255), bl BLOB, lb LONGBLOB,
  dt DATE, dtm0 DATETIME, dtm3 DATETIME(3), dtm6 DATETIME(6),
  ts0 TIMESTAMP NULL DEFAULT NULL, ts3 TIMESTAMP(3) NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL,
  tm TIME, tm1 TIME(1), tm6 TIME(6), y YEAR,
  e ENUM('small','medium','large',''), st SET('a','b','c','d'),
  bt1 BIT(1), bt10 BIT(10), bt64 BIT(64),
  j JSON
) ENGINE=InnoDB;

-- minimum values
INSERT INTO all_types VALUES (NULL,
  -128, 0, -32768, 0, -8388608, 0, -2147483648, 0, -9223372036854775808, 0,
  '-99999999999999999999999999999999999.999999999999999999999999999999', -99999999.99, -3.40282e38, -1.7976931348623157e308,
  '', '', '', '', '',
  UNHEX('00'), UNHEX(''), '', '',
  '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.000', '1000-01-01 00:00:00.000001',
  '1970-01-01 00:00:01', '1970-01-01 00:00:01.000', '1970-01-01 00:00:01.000001',
  '-838:59:59', '-838:59:59.0', '-838:59:59.000000', 1901,
  'small', '', b'0', b'0', 0, '[]');
-- maximum values
INSERT INTO all_types VALUES (NULL,
  127, 255, 32767, 65535, 8388607, 16777215, 2147483647, 4294967295, 9223372036854775807, 18446744073709551615,
  '99999999999999999999999999999999999.999999999999999999999999999999', 99999999.99, 3.40282e38, 1.7976931348623157e308,
  'abcdefghij', CONCAT(REPEAT('x', 250), '😀é'), 'héllo 😀 wörld', REPEAT('long text ✓ ', 20000), 'ÿþ Zoë',
  UNHEX(REPEAT('FF', 16)), UNHEX('000102030405060708090A0B0C0D0E0F10FF80'), UNHEX(REPEAT('DEADBEEF00', 1000)), REPEAT(UNHEX('00FF10'), 70000),
  '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
  '2038-01-19 03:14:07', '2038-01-19 03:14:07.999', '2038-01-19 03:14:07.999999',
  '838:59:59', '838:59:59.0', '838:59:59.000000', 2155,
  'large', 'a,b,c,d', b'1', b'1111111111', 18446744073709551615, '{"a":[1,2,{"b":null}],"e":"😀"}');
-- zero values (zero dates are allowed by this source's sql_mode)
INSERT INTO all_types VALUES (NULL,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
  0, 0, 0, 0,
  '', '', '', '', '',
  UNHEX(''), UNHEX(''), UNHEX(''), UNHEX(''),
  '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00.000000',
  '0000-00-00 00:00:00', '0000-00-00 00:00:00.000', '0000-00-00 00:00:00.000000',
  '00:00:00', '00:00:00.0', '00:00:00.000000', 0,
  '', '', b'0', b'0', 0, 'null');
-- fractional and ordinary values
INSERT INTO all_types VALUES (NULL,
  -1, 1, -1, 1, -1, 1, -1, 1, -1, 9223372036854775808,
  '0.000000000000000000000000000001', -0.50, 2.7182817, 0.1,
  'abc', 'trailing spaces   ', 'tab\tnewline\nquote''backslash\\', 'x', 'café',
  UNHEX('0102'), UNHEX('00'), UNHEX('00'), UNHEX('FF'),
  '2024-02-29', '2024-02-29 13:14:15', '2024-02-29 13:14:15.123', '2024-02-29 13:14:15.123456',
  '2024-02-29 13:14:15', '2024-02-29 13:14:15.120', '2024-03-31 01:30:00.000001',
  '-00:00:01', '-00:00:01.5', '12:34:56.789000', 2024,
  'medium', 'b,d', b'1', b'1000000001', 9223372036854775807, '{"k": "v", "n": 1.5e300}');
-- all NULL
INSERT INTO all_types (id) VALUES (NULL);

CREATE TABLE orders (
  region CHAR(2) NOT NULL,
  order_no BIGINT UNSIGNED NOT NULL,
  customer VARCHAR(64) NOT NULL DEFAULT 'anonymous' COMMENT 'who ordered',
  amount DECIMAL(12,2) NOT NULL DEFAULT 0.00,
  qty INT NOT NULL DEFAULT 1,
  total DECIMAL(14,2) AS (amount * qty) STORED,
  note VARCHAR(100) AS (CONCAT(customer, '/', region)) VIRTUAL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
  PRIMARY KEY (region, order_no),
  UNIQUE KEY uk_customer_no (customer, order_no),
  KEY idx_created (created_at)
) ENGINE=InnoDB COMMENT='orders by region';
INSERT INTO orders (region, order_no, customer, amount, qty, created_at, updated_at)
  SELECT ELT(1 + seq % 3, 'eu', 'us', 'ap'), seq, CONCAT('c', seq % 500), seq * 1.25, 1 + seq % 7,
         '2024-01-01 00:00:00.000' + INTERVAL seq SECOND, '2024-06-01 00:00:00' + INTERVAL seq MINUTE
  FROM seq_1_to_5000;

CREATE TABLE order_items (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  region CHAR(2) NOT NULL,
  order_no BIGINT UNSIGNED NOT NULL,
  sku VARCHAR(20) NOT NULL,
  KEY fk_items_order (region, order_no),
  CONSTRAINT fk_items_order FOREIGN KEY (region, order_no) REFERENCES orders (region, order_no)
) ENGINE=InnoDB;
INSERT INTO order_items (region, order_no, sku)
  SELECT ELT(1 + seq % 3, 'eu', 'us', 'ap'), seq, CONCAT('sku-', seq) FROM seq_1_to_3000;

CREATE TABLE audit_log (
  at DATETIME(6), actor VARCHAR(32), action VARCHAR(32), payload BLOB
) ENGINE=InnoDB;
INSERT INTO audit_log
  SELECT '2024-01-01 00:00:00' + INTERVAL (seq % 100) SECOND, CONCAT('u', seq % 10), 'login',
         IF(seq % 3 = 0, NULL, UNHEX(MD5(seq % 50)))
  FROM seq_1_to_3000;

CREATE TABLE people_latin1 (
  code VARCHAR(10) NOT NULL, name VARCHAR(50), city VARCHAR(50),
  UNIQUE KEY uk_code (code)
) ENGINE=InnoDB DEFAULT CHARSET=latin1;
INSERT INTO people_latin1 VALUES ('p1', 'Zoë', 'Malmö'), ('p2', 'François', 'Besançon'), ('p3', NULL, 'ÿ'), ('p4', '', NULL);

CREATE TABLE sbtest (
  id INT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '',
  KEY k_1 (k)
) ENGINE=InnoDB;
INSERT INTO sbtest (k, c, pad)
  SELECT seq % 10007, CONCAT(MD5(seq), '-', MD5(seq + 1), '-', MD5(seq + 2)), MD5(seq * 7) FROM seq_1_to_120000;

CREATE VIEW v_region_totals AS SELECT region, COUNT(*) AS n, SUM(amount) AS amount FROM orders GROUP BY region;
CREATE VIEW v_eu AS SELECT * FROM v_region_totals WHERE region = 'eu';
