"""The email providers' webhook door (django-anymail's tracking and inbound views), mounted at
/webhooks/<provider>/tracking/ and /webhooks/<provider>/inbound/."""
