"""Staff: the directory (sessions, CSRF, who may see what) and the sign-in desk."""
