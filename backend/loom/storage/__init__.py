"""Small repositories over SQL. Every query that touches a user's data names the user."""
