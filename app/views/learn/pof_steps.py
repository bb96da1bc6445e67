"""Learn, chapter 4: What PoF does, step by step (app.learn.s4_pof)."""

from app.learn import chapters, s4_pof

chapters.show(4, s4_pof.pof_step_by_step)
