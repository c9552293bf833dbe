DROP DATABASE old_shop;
