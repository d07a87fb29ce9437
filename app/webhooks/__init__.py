from app.webhooks.routes import bp

__all__ = ["bp"]
