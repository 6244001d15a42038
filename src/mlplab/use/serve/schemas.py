"""The service's request and response bodies, as they appear in /openapi.json."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Pixel = Annotated[int, Field(ge=0, le=255)]
Row = Annotated[list[Pixel], Field(min_length=28, max_length=28)]


class PixelsRequest(BaseModel):
    """One 28×28 greyscale image as rows of pixel values 0-255 (the same preprocessing applies:
    an image that is already MNIST-like, bright ink on a dark background, is taken as it is)."""

    model_config = ConfigDict(extra="forbid")
    pixels: Annotated[list[Row], Field(min_length=28, max_length=28, description="28 rows of 28 values 0-255")]


class ClassScore(BaseModel):
    class_index: int = Field(ge=0)
    class_name: str
    probability: float = Field(ge=0, le=1)


class Prediction(BaseModel):
    """One image's answer: the same object as `mlplab predict --json` writes, without `path`."""

    class_index: int = Field(ge=0, description="the predicted class")
    class_name: str
    probability: float = Field(ge=0, le=1)
    top_k: list[ClassScore] = Field(description="the best classes, most probable first")
    input_png: str | None = Field(
        default=None,
        description="only with ?include_input=true: the 28×28 greyscale image the model saw, as a base64 PNG "
                    "(show it with <img src=\"data:image/png;base64,...\">)",
    )


class ModelInfo(BaseModel):
    name: str = Field(description="use it in /v1/models/{name}/predict")
    default: bool = Field(description="the model /v1/predict uses (the first one given to `mlplab serve`)")
    dataset: str
    class_names: list[str]
    parameters: int
    test_accuracy: float | None = Field(description="measured on the dataset's test set when the model was trained")
    input_style: Literal["digit", "object"] | str = Field(
        description="digit: MNIST-style centring of the ink; object: the whole object fitted into 28×28")


class ModelList(BaseModel):
    models: list[ModelInfo]


class Health(BaseModel):
    status: Literal["alive", "ready"]


class ErrorBody(BaseModel):
    error: str = Field(description="one line saying what was wrong")
