-- The sample database of the quickstart: a small shop.
DROP DATABASE IF EXISTS ferry_demo;
CREATE DATABASE ferry_demo CHARACTER SET utf8mb4;
USE ferry_demo;
CREATE TABLE customers (
  id INT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  email VARCHAR(120) NOT NULL,
  name VARCHAR(80) NOT NULL,
  country CHAR(2) NOT NULL DEFAULT 'SE',
  created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_email (email)
) ENGINE=InnoDB;
INSERT INTO customers (email, name, country, created_at)
  SELECT CONCAT('user', seq, '@example.com'), CONCAT('Customer ', seq, ' ☕'), ELT(1 + seq % 4, 'SE', 'DE', 'FR', 'US'),
         '2024-01-01 00:00:00' + INTERVAL seq MINUTE
  FROM seq_1_to_20000;
CREATE TABLE products (
  sku VARCHAR(16) NOT NULL PRIMARY KEY,
  title VARCHAR(200) NOT NULL,
  price DECIMAL(10,2) NOT NULL,
  attributes JSON,
  image BLOB
) ENGINE=InnoDB;
INSERT INTO products
  SELECT CONCAT('SKU-', LPAD(seq, 6, '0')), CONCAT('Product ', seq), ROUND(1 + seq * 0.37, 2),
         JSON_OBJECT('color', ELT(1 + seq % 3, 'red', 'green', 'blue'), 'size', seq % 50), UNHEX(MD5(seq))
  FROM seq_1_to_2000;
CREATE TABLE orders (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  customer_id INT UNSIGNED NOT NULL,
  sku VARCHAR(16) NOT NULL,
  qty SMALLINT NOT NULL,
  status ENUM('new', 'paid', 'shipped', 'returned') NOT NULL DEFAULT 'new',
  ordered_at DATETIME(6) NOT NULL,
  KEY idx_customer (customer_id),
  CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES customers (id)
) ENGINE=InnoDB;
INSERT INTO orders (customer_id, sku, qty, status, ordered_at)
  SELECT 1 + seq % 20000, CONCAT('SKU-', LPAD(1 + seq % 2000, 6, '0')), 1 + seq % 5, ELT(1 + seq % 4, 'new', 'paid', 'shipped', 'returned'),
         '2024-02-01 00:00:00' + INTERVAL seq SECOND
  FROM seq_1_to_200000;
CREATE VIEW revenue_by_country AS
  SELECT c.country, SUM(o.qty * p.price) AS revenue
  FROM orders o JOIN customers c ON c.id = o.customer_id JOIN products p ON p.sku = o.sku
  GROUP BY c.country;
