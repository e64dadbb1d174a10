"""A strategy plugin for the bot (rename me)."""
