from __future__ import annotations

import numpy as np
import pytest

from restorelab.benchmark.metrics import create_metric
from restorelab.benchmark.restorers import Restorer, create_restorer, list_restorers
from restorelab.benchmark.restorers.classical import gaussian_psf
from restorelab.degradations import degrade

psnr = create_metric("psnr")


def test_registry_has_the_baselines() -> None:
    assert {"identity", "nlm", "tv", "wavelet", "rl"} <= set(list_restorers())


def test_identity_returns_the_input(astronaut: np.ndarray) -> None:
    out = create_restorer("identity").restore(astronaut)
    assert np.array_equal(out, astronaut)
    assert out is not astronaut


@pytest.mark.parametrize("name", ["nlm", "tv", "wavelet"])
def test_denoisers_improve_psnr_on_noise(name: str, astronaut: np.ndarray) -> None:
    noisy = degrade(astronaut, "gaussian_noise", 2, seed=0)
    restored = create_restorer(name).restore(noisy)
    assert restored.shape == noisy.shape and restored.dtype == np.uint8
    assert psnr(astronaut, restored) > psnr(astronaut, noisy) + 2.0


def test_richardson_lucy_with_the_true_psf_sharpens(astronaut: np.ndarray) -> None:
    blurred = degrade(astronaut, "gaussian_blur", 2)  # σ = 2 px
    restored = create_restorer("rl:psf_sigma=2,num_iter=20").restore(blurred)
    assert psnr(astronaut, restored) > psnr(astronaut, blurred)


def test_gaussian_psf_is_normalised() -> None:
    psf = gaussian_psf(1.5)
    assert psf.sum() == pytest.approx(1.0)
    assert psf.shape == (13, 13)


def test_spec_options_config_and_hash() -> None:
    default = create_restorer("tv")
    tuned = create_restorer("tv:weight=0.2")
    assert tuned.options["weight"] == 0.2
    assert tuned.label == "tv:weight=0.2"
    assert default.label == "tv"
    assert default.config_hash != tuned.config_hash
    assert create_restorer("tv", weight=0.2).config_hash == tuned.config_hash


def test_unknown_option_and_name_are_clear_errors() -> None:
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['strength'\]; valid: "):
        create_restorer("nlm:strength=3")
    with pytest.raises(KeyError, match="Did you mean 'nlm'"):
        create_restorer("nlmm")


def test_output_contract_is_enforced(astronaut: np.ndarray) -> None:
    class Cropping(Restorer):
        name = "cropping"

        def restore_array(self, image: np.ndarray) -> np.ndarray:
            return image[1:]

    with pytest.raises(ValueError, match="returned shape"):
        Cropping().restore(astronaut)


def test_classical_restorers_pickle(astronaut: np.ndarray) -> None:
    import pickle

    restorer = pickle.loads(pickle.dumps(create_restorer("nlm:h_factor=0.5")))
    assert restorer.options["h_factor"] == 0.5
