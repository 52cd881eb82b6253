"""The same data bytes on every x86 machine.

Every data file the pipeline makes (the smoke and the laptop profile's) is generated in a
fresh process and checked against the checksums stored here, with NumPy's and OpenBLAS's
runtime CPU dispatch as this machine has it and narrowed to older CPUs: an AVX2 machine
without AVX-512 (NumPy's X86_V4 paths off, OpenBLAS's Haswell kernels) and an SSE one
(X86_V3 off too, OpenBLAS's Prescott kernels). Before the float64 generation was pinned
(`widthlab.data`: fixed-order products instead of BLAS, exact Gaussian weights instead of
np.exp), MNIST-1D's inputs changed with NumPy's dispatch and the regression targets with
OpenBLAS's kernel.
"""

import json
import subprocess
import sys

import pytest
from conftest import CONF, subprocess_env

pytestmark = pytest.mark.slow

# sha256 of data/<name>.npz and its card data/<name>.json, per profile.
CHECKSUMS = {
    "laptop/digits.json": "79ff38eaf5c5d7b9ebb9ae6e5fefa84f6857447da2706c6ecddf51cb88c44f0a",
    "laptop/digits.npz": "f684be2312217f11846c981dccdac142f910e9239b80fbc8ffd99abb5637dfd1",
    "laptop/digits_noisy.json": "679e7ee91a037f4b12ec6f84b7f02155ee0e178ab611f20bf921c6356ec5f967",
    "laptop/digits_noisy.npz": "fa2ee3e557d288d9922298090a02ffdadc4292448449e1ee0576630e087e3b55",
    "laptop/mnist1d.json": "7af8c484419637e0149a48bcdad809dc5b5bfa044eb12d49deb055bd19bc2e3a",
    "laptop/mnist1d.npz": "c8a6e4f00caddf40e614788af0536912f59517dceff06dc85aca569b9c193e72",
    "laptop/mnist1d_noisy.json": "ee07efbdf149217d721e627672eb4c397d97dcf9beca96f5c7ef35be6d73f77f",
    "laptop/mnist1d_noisy.npz": "dae1cc752df46c44300887231b20af6dc6131742eb73456c2e683f7ad588792b",
    "laptop/sphere_linear.json": "263ece3c6620b4bee0b06cfc694bc8de1c7ddba40264f5319b3379356e8fa7db",
    "laptop/sphere_linear.npz": "0bef753e6c14345381738481713579acf45d998cf7b74f0a949b138c873e51ec",
    "laptop/teacher.json": "5cef67ec9479750a3c33f05b41e7bcada918faac1e7d8d18796b487ff42a8ff5",
    "laptop/teacher.npz": "a1b6480ebdf10a832fd1924d5395afc98710e1ae20d6c824693c55272c762e00",
    "smoke/digits.json": "36f78cf7e3c985ebba6e9297d002471c8c9328a07c7472eb0e4dbc16e53ebdb4",
    "smoke/digits.npz": "2fee0132eefb174233a1692ad8a05dcd605949fc0f0d55a3a1e835299c6cfd8a",
    "smoke/digits_noisy.json": "d9712a385db7f8e1f9b69e1cdcfb326c8c56bf117e83678dcfc81a82c2c2948e",
    "smoke/digits_noisy.npz": "1bfa9d977cbd17c37d7d066e744e6393592641f912159092d8f0cae186d5fa4e",
    "smoke/mnist1d.json": "afe9e92be0ee63f1b9d31adf797721f361306738f42c3b510d299a558732bff6",
    "smoke/mnist1d.npz": "a031176063027791459064869f664be5784c99b4caa19de67dcd35bee3edc447",
    "smoke/mnist1d_noisy.json": "ce30aed93e7e49f63f8b63565fd62b089ecb1c27c695932c2eab5aec70b9b71a",
    "smoke/mnist1d_noisy.npz": "410e1c8ea9b3f848b6fb52ac0641efdeff10a1b0db8a8497834ac77a1c7a02bb",
    "smoke/sphere_linear.json": "2832bf68504ae9f550bf0c24394236fb41df90587f1fc601601e6ab0fd5e0b4a",
    "smoke/sphere_linear.npz": "b358d44bfb290b5ae32a26286b6e032765ec00f513cc4735fb1d4540f35f37b9",
    "smoke/teacher.json": "8a33c146104e733e88c7cfd976fd1db105b40191528fed92fa2ad9cabe4fc9e3",
    "smoke/teacher.npz": "4100b4aebb7063c565b874ec007b36296d47aaaa82aada234c5d0f2c92745a61",
}

GENERATE = """
import hashlib, json, sys, tempfile
from pathlib import Path
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from widthlab.data import make_dataset
from widthlab.runtime.datafiles import save_dataset

folder, out = Path(tempfile.mkdtemp()), {}
for profile in ("smoke", "laptop"):
    for name in ("sphere_linear", "teacher", "digits", "digits_noisy", "mnist1d", "mnist1d_noisy"):
        with initialize_config_dir(config_dir=sys.argv[1], version_base="1.3"):
            cfg = compose("config", overrides=[f"data={name}", f"profile={profile}"])
        settings = OmegaConf.to_container(cfg.data, resolve=True)
        made = make_dataset(settings.pop("name"), **settings)
        for path in save_dataset(made, folder / profile):
            out[f"{profile}/{path.name}"] = hashlib.sha256(path.read_bytes()).hexdigest()
print(json.dumps(out))
"""

DISPATCH = {
    "this-cpu": {},
    "avx2-no-avx512": {
        "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR",
        "OPENBLAS_CORETYPE": "Haswell",
    },
    "sse-only": {
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR",
        "OPENBLAS_CORETYPE": "Prescott",
    },
}


@pytest.mark.parametrize("dispatch", sorted(DISPATCH))
def test_every_data_file_has_its_stored_checksum_whatever_the_simd_width(dispatch):
    env = subprocess_env(DISPATCH[dispatch])
    done = subprocess.run(
        [sys.executable, "-c", GENERATE, str(CONF)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    made = json.loads(done.stdout.strip().splitlines()[-1])
    wrong = sorted(name for name in CHECKSUMS if made.get(name) != CHECKSUMS[name])
    assert not wrong, f"{dispatch}: {wrong}"
    assert set(made) == set(CHECKSUMS)


def test_the_pinned_operations_equal_what_they_replace():
    """Fixed-order products equal BLAS's to rounding, and the exact Gaussian filter equals
    scipy's to rounding (bit for bit where np.exp rounds correctly)."""
    import numpy as np
    from scipy.ndimage import gaussian_filter

    from widthlab.data import fixed_order_products, gaussian_filter_exact

    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((300, 40)), rng.standard_normal((7, 40))
    np.testing.assert_allclose(fixed_order_products(x, w), x @ w.T, rtol=1e-13, atol=1e-13)
    signal = rng.standard_normal(100)
    np.testing.assert_allclose(
        gaussian_filter_exact(signal, 2), gaussian_filter(signal, 2), rtol=1e-14, atol=1e-15
    )
