"""State that changes while serving, behind one small interface (memory now)."""
