from app.api.routes import bp

__all__ = ["bp"]
