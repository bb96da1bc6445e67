"""The Learn page's sections: one module per section, each an st.fragment with its own cached
computations, `common` for what they share, and `chapters` for the six chapter pages
(app/views/learn/, one per section, section 3's two parts on one page) that show them.

- `s1_flatness`: 1. What flatness is (the top eigenvector's slice, λ_max, trace);
- `s2_shift`: 2. Why it might matter (a shifted training landscape and the test loss);
- `s3_recipes`: 3. What makes minima flat or sharp (two recipes side by side);
- `s3_digits`: section 3 on the bundled digits SGD and SAM models (a background job);
- `s4_pof`: 4. What PoF does, step by step;
- `s5_caveats`: 5. The caveats (rescaling, flatness vs. test loss, what the paper measured);
- `s6_stability`: 6. The edge of stability (λ_max against 2/η under full-batch gradient descent).
"""
