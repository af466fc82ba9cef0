DROP TABLE admin_secrets;
DROP TABLE admin_login_failures;
DROP TABLE admin_users;
