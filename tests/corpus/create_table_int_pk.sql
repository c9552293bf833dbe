CREATE TABLE legacy (id int PRIMARY KEY, name varchar(100));
