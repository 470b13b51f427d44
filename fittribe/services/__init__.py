"""Business rules. No Flask request objects in here: views pass plain values in."""
