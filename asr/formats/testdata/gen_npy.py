"""Writes the NumPy fixtures under npy/ that asr/formats' npy tests read.

Run with NumPy 1.24 (Debian bookworm python3-numpy): /usr/bin/python3 gen_npy.py
"""
import numpy as np

out = "npy/"
np.save(out + "f4_2x3.npy", (np.arange(6, dtype="<f4").reshape(2, 3) * 0.5 - 1))
np.save(out + "f4_scalar.npy", np.array(3.5, dtype="<f4"))
np.save(out + "f4_empty.npy", np.zeros((0, 4), dtype="<f4"))
np.save(out + "f4_3d.npy", np.linspace(-1, 1, 24, dtype="<f4").reshape(2, 3, 4))
np.save(out + "i4_vec.npy", np.arange(5, dtype="<i4") - 2)
np.save(out + "i8_tokens.npy", np.array([50258, 50259, 50359, 50363], dtype="<i8"))
np.save(out + "f4_fortran.npy", np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3)))
np.save(out + "f8_vec.npy", np.array([0.1, -2.5, 1e40], dtype="<f8"))
np.save(out + "f2_vec.npy", np.array([0.5, -65504, 6e-8], dtype="<f2"))
np.save(out + "be_f4.npy", np.array([1, 2], dtype=">f4"))
np.save(out + "u1_vec.npy", np.array([1, 2], dtype="u1"))
with open(out + "f4_v2.npy", "wb") as f:
    np.lib.format.write_array(f, np.arange(4, dtype="<f4"), version=(2, 0))
