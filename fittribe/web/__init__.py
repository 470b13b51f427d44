"""Blueprints, one per area. Views parse and authorize; services hold the rules."""
