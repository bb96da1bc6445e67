"""Learn, chapter 2: Why it might matter (app.learn.s2_shift)."""

from app.learn import chapters, s2_shift

chapters.show(2, s2_shift.why_it_matters)
