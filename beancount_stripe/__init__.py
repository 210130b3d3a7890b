"""beancount-stripe: the Stripe connection for plain-text accounting."""

__version__ = "0.1.0"
