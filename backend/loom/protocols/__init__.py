"""Foreign protocols: one thin adapter package each, translating its wire to core calls."""
