"""The named datasets mlplab knows: files, mirrors, checksums and class names.

A mirror is only a place to try; what makes a downloaded or found file trustworthy is the pinned
SHA-256. Two digests can be pinned per file because the same content travels in different gzip
wrappings (Debian and ../shared/data re-compress their copies):

* ``sha256`` — of the *decompressed* IDX bytes: accepts any faithful copy, however compressed;
* ``gz_sha256`` — of the ``.gz`` as the publisher serves it: cheap to check, no decompression.

A file is verified when either matches. Where a digest is unknown it is ``None`` and the other one
carries the verification (see ``DatasetSpec.verification``).
"""

from __future__ import annotations

from dataclasses import dataclass

from mlplab.errors import DataError

# Roles of the four standard files, in the order Keras' load_data() returns them.
ROLES = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class FileSpec:
    """One of the four IDX files of a dataset."""

    filename: str  # as published, e.g. "train-images-idx3-ubyte.gz"
    shape: tuple[int, ...]  # of the decoded array: (N, 28, 28) for images, (N,) for labels
    sha256: str | None  # of the decompressed IDX content
    gz_sha256: str | None = None  # of the published .gz file

    @property
    def names(self) -> tuple[str, ...]:
        """Names the file may have on disk: as published, or already gunzipped."""
        if self.filename.endswith(".gz"):
            return (self.filename, self.filename[: -len(".gz")])
        return (self.filename,)


@dataclass(frozen=True)
class DatasetSpec:
    """A named dataset: where to get it, how to check it, what its labels mean."""

    name: str
    title: str
    homepage: str
    mirrors: tuple[str, ...]  # base URLs, tried in order; a file's URL is base + filename
    files: dict[str, FileSpec]  # role -> file, roles as in ROLES
    class_names: tuple[str, ...]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def verification(self) -> str:
        """How well a copy of this dataset can be verified (shown by `mlplab data list`)."""
        if all(f.sha256 for f in self.files.values()):
            return "sha256 of the decompressed files" + (
                " and of the published .gz" if all(f.gz_sha256 for f in self.files.values()) else ""
            )
        return "sha256 of the published .gz only (a re-compressed copy is checked by IDX structure)"


def _standard_files(train: int, test: int, digests: dict[str, tuple[str | None, str | None]]) -> dict[str, FileSpec]:
    """The four MNIST-layout files; digests maps role -> (decompressed sha256, published .gz sha256)."""
    layout = {
        "train_images": ("train-images-idx3-ubyte.gz", (train, 28, 28)),
        "train_labels": ("train-labels-idx1-ubyte.gz", (train,)),
        "test_images": ("t10k-images-idx3-ubyte.gz", (test, 28, 28)),
        "test_labels": ("t10k-labels-idx1-ubyte.gz", (test,)),
    }
    return {
        role: FileSpec(filename, shape, *digests[role]) for role, (filename, shape) in layout.items()
    }


MNIST = DatasetSpec(
    name="mnist",
    title="MNIST handwritten digits (LeCun, Cortes, Burges)",
    homepage="http://yann.lecun.com/exdb/mnist/",
    mirrors=(
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ),
    files=_standard_files(60_000, 10_000, {
        "train_images": ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
                         "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
        "train_labels": ("65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
                         "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
        "test_images": ("0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
                        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
        "test_labels": ("ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
                        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
    }),
    class_names=tuple(str(d) for d in range(10)),
)

FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    title="Fashion-MNIST clothing images (Zalando Research)",
    homepage="https://github.com/zalandoresearch/fashion-mnist",
    mirrors=(
        "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    ),
    files=_standard_files(60_000, 10_000, {
        "train_images": ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
                         "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
        "train_labels": ("bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
                         "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
        "test_images": ("5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
                        "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
        "test_labels": ("0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
                        "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
    }),
    class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                 "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
)

# The decompressed digests of KMNIST are not pinned: no copy was at hand to compute them from.
KMNIST = DatasetSpec(
    name="kmnist",
    title="Kuzushiji-MNIST cursive Japanese (ROIS-DS CODH), CC BY-SA 4.0",
    homepage="https://codh.rois.ac.jp/kmnist/",
    mirrors=(
        "https://codh.rois.ac.jp/kmnist/dataset/kmnist/",
        "http://codh.rois.ac.jp/kmnist/dataset/kmnist/",
    ),
    files=_standard_files(60_000, 10_000, {
        "train_images": (None, "51467d22d8cc72929e2a028a0428f2086b092bb31cfb79c69cc0a90ce135fde4"),
        "train_labels": (None, "e38f9ebcd0f3ebcdec7fc8eabdcdaef93bb0df8ea12bee65224341c8183d8e17"),
        "test_images": (None, "edd7a857845ad6bb1d0ba43fe7e794d164fe2dce499a1694695a792adfac43c5"),
        "test_labels": (None, "20bb9a0ef54c7db3efc55a92eef5582c109615df22683c380526788f98e42a1c"),
    }),
    class_names=("o", "ki", "su", "tsu", "na", "ha", "ma", "ya", "re", "wo"),
)

REGISTRY: dict[str, DatasetSpec] = {spec.name: spec for spec in (MNIST, FASHION_MNIST, KMNIST)}
ALIASES = {"fashion_mnist": "fashion-mnist", "fmnist": "fashion-mnist", "k-mnist": "kmnist"}
USER_PREFIXES = ("idx:", "npz:", "folder:")


def get_spec(name: str) -> DatasetSpec:
    """The registry entry for a dataset name (case-insensitive, a few aliases accepted)."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    try:
        return REGISTRY[key]
    except KeyError:
        known = ", ".join(REGISTRY)
        raise DataError(
            f"unknown dataset {name!r}: choose one of {known}, or your own data as "
            "idx:DIR, npz:FILE or folder:DIR"
        ) from None
