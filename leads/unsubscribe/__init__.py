"""The one-click unsubscribe door (RFC 8058): public pages at /unsubscribe/<token>/, no login."""
