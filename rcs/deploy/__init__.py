"""`rcs deploy`: run a robot server with a policy link, checked before and logged while it runs."""
