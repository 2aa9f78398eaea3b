-- Two small tables for the bad-input scenarios.
CREATE DATABASE `{{db}}`;
USE `{{db}}`;
CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(40) NOT NULL, balance DECIMAL(12,2) NOT NULL);
INSERT INTO accounts SELECT seq, CONCAT('owner-', seq), seq * 10.5 FROM seq_1_to_500;
CREATE TABLE notes (id INT PRIMARY KEY, body TEXT);
INSERT INTO notes SELECT seq, REPEAT('n', seq) FROM seq_1_to_50;
