"""Games behind one Gym-style API (CarRacing, Doom Take Cover), frame preprocessing, and the dream."""
