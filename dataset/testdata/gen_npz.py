"""Writes the small npz fixtures of dataset's tests (run with a Python that has numpy:
/usr/bin/python3 gen_npz.py). Every fixture holds the same 10 rows, so the tests can check
that layouts, dtypes, compression and npy versions all decode to identical batches."""
import io, zipfile
import numpy as np

X_int = np.array([[0, 1, 2], [3, 4, 5], [-1, 7, 100], [9, 0, 0], [1, 1, 1],
                  [2, 3, 5], [8, 13, 21], [34, 55, 89], [0, 0, 0], [1618112, 2, 3]], dtype=np.int32)
X_cat = np.array([[0, 6], [1, 5], [2, 4], [3, 3], [4, 2], [0, 1], [1, 0], [2, 6], [3, 5], [4, 4]], dtype=np.int64)
y = np.array([0, 1, 0, 0, 1, 1, 0, 0, 0, 1], dtype=np.int32)
counts = np.array([5, 7], dtype=np.int32)

np.savez_compressed('small_c.npz', X_int=X_int, X_cat=X_cat, y=y, counts=counts)
# The DLRM reference's own layout: X_cat float64 in Fortran order.
np.savez_compressed('small_f.npz', X_int=np.asfortranarray(X_int), X_cat=np.asfortranarray(X_cat.astype(np.float64)), y=y, counts=counts)
# Stored (np.savez), so rows are read in place; Fortran X_cat again.
np.savez('small_stored.npz', X_int=X_int, X_cat=np.asfortranarray(X_cat.astype(np.float64)), y=y)
# Other dtypes: uint16 indices, float32 dense, bool labels, float64 labels elsewhere.
np.savez_compressed('small_dtypes.npz', X_int=X_int.astype(np.float32), X_cat=X_cat.astype(np.uint16), y=y.astype(np.bool_))

# npy format versions 2.0 and 3.0, which numpy only picks for huge or non-latin-1 headers.
def npy(a, version):
    b = io.BytesIO()
    np.lib.format.write_array(b, a, version=version)
    return b.getvalue()

for v in [(2, 0), (3, 0)]:
    with zipfile.ZipFile('small_v%d.npz' % v[0], 'w', zipfile.ZIP_DEFLATED) as z:
        z.writestr('X_int.npy', npy(X_int.astype(np.int64), v))
        z.writestr('X_cat.npy', npy(np.asfortranarray(X_cat.astype(np.uint8)), v))
        z.writestr('y.npy', npy(y.astype(np.float64), v))
