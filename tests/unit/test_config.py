from config import config_for, database_url, limits_storage_uri


def test_database_url_defaults_to_a_local_postgresql():
    assert database_url(None) == "postgresql+psycopg://postgres@127.0.0.1:5432/fittribe"
    assert database_url("") == database_url(None)


def test_database_url_uses_psycopg3_for_postgres():
    assert database_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert database_url("postgresql+psycopg://u@h/db") == "postgresql+psycopg://u@h/db"


def test_limits_storage_follows_redis_url():
    assert limits_storage_uri(None) == "memory://"
    assert limits_storage_uri("redis://127.0.0.1:6379/2") == "redis://127.0.0.1:6379/2"
    assert limits_storage_uri("unix:///tmp/r.sock") == "redis+unix:///tmp/r.sock"


def test_production_cookies_are_secure():
    production = config_for("production")
    assert production.SESSION_COOKIE_SECURE and production.REMEMBER_COOKIE_SECURE and production.FORCE_HTTPS
    for stage in ("development", "testing", "production"):
        config = config_for(stage)
        assert config.SESSION_COOKIE_HTTPONLY and config.SESSION_COOKIE_SAMESITE == "Lax"
