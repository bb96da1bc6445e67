"""Write assets/digits.safetensors: scikit-learn's digits, split as pof.data.offline.split_digits
splits them, read by every command on the digits data without importing scikit-learn.

    python assets/make_digits.py

Run it again when scikit-learn's digits or its split change (tests/test_data.py says when).
"""

from safetensors.numpy import save_file

from pof.data.offline import DIGITS_ARRAYS, DIGITS_FILE, split_digits

if __name__ == "__main__":
    save_file(dict(zip(DIGITS_ARRAYS, split_digits(), strict=True)), str(DIGITS_FILE))
    print(f"wrote {DIGITS_FILE} ({DIGITS_FILE.stat().st_size:,} bytes)")
