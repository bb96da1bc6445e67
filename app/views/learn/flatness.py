"""Learn, chapter 1: What flatness is (app.learn.s1_flatness)."""

from app.learn import chapters, s1_flatness

chapters.show(1, s1_flatness.what_flatness_is)
