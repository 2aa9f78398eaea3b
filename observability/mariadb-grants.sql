-- Privileges of the ferry user in docker-compose's databases (migration + replication).
GRANT SELECT, SHOW VIEW, RELOAD, REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR ON *.* TO 'ferry'@'%';
GRANT ALL PRIVILEGES ON *.* TO 'ferry'@'%';
