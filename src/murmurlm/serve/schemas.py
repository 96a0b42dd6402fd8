"""The web service's schema: the JSON it answers with and the OpenAPI description of its request
bodies and errors (pydantic models; :mod:`murmurlm.serve.app` holds the routes).

Examples
--------
>>> FeatureOut(name="Murmur", label="Present", probability=0.8,
...            probabilities={"Present": 0.8, "Unknown": 0.1, "Absent": 0.1}).label
'Present'
>>> sorted(ERRORS)
[400, 408, 413, 415, 422, 503]
"""

from __future__ import annotations

from pydantic import BaseModel, Field



class FeatureOut(BaseModel):
    name: str = Field(description="CirCor column name, e.g. 'Systolic murmur timing'")
    label: str = Field(description="predicted class ('nan': no such murmur)")
    display: str | None = Field(None, description="the label as a person reads it ('no systolic murmur' for 'nan')")
    probability: float | None = Field(description="probability of the predicted class")
    probabilities: dict[str, float] = Field(description="class -> probability, CirCor's class order")
    overridden: bool = Field(False, description="label set to 'nan' because Murmur is not Present (or the "
                                                "murmur's timing is 'nan'); probability is then null")


class SegmentOut(BaseModel):
    start: float
    end: float
    state: int = Field(description="1 S1, 2 systole, 3 S2, 4 diastole, 0 unannotated")
    name: str


class SegmentationOut(BaseModel):
    available: bool
    heart_rate_bpm: float | None = None
    cycles: int | None = None
    method: str | None = None
    segments: list[SegmentOut] = []


class QualityOut(BaseModel):
    usable_fraction: float
    flag: str = Field(description="good (>= 0.6 usable), fair (>= 0.3) or poor; poor too when the heart sounds "
                                   "stand less than 6 dB above the background noise")
    method: str = Field(description="'cycles' (complete heart cycles) or 'energy' (silence/clipping/bursts)")
    detail: str
    heart_contrast_db: float | None = Field(None, description="heart sounds (S1, S2) over the background of the "
                                                              "average heartbeat, dB; null without 2 usable cycles")
    reason: str | None = Field(None, description="why the flag is poor, in plain words (null otherwise)")


class HeartbeatOut(BaseModel):
    reliable: bool = Field(description="at least 2 plausible complete heart cycles were averaged")
    cycles_kept: int
    cycles_found: int
    rejected: dict[str, int] = Field(description="complete cycles rejected, by reason")
    fallback: str | None = Field(None, description="why the description is unreliable, when it is")
    descriptors: dict[str, float] = Field(description="cycle-aligned descriptors (docs/descriptors.md)")


class InputOut(BaseModel):
    filename: str
    bytes: int
    format: str
    subtype: str
    sampling_rate: int
    channels: int
    duration_s: float


class PredictResponse(BaseModel):
    input: InputOut
    sampling_rate: int = Field(description="rate of the analysis: segmentation, quality, figures (4000 Hz)")
    duration_s: float
    labels: dict[str, str]
    features: list[FeatureOut]
    segmentation: SegmentationOut
    quality: QualityOut
    heartbeat: HeartbeatOut | None = Field(None, description="the average heartbeat and its descriptors")
    warnings: list[str]
    model: str
    elapsed_s: float
    plot_png: str | None = Field(None, description="base64 PNG of the report figure (?plot=true)")
    heartbeat_png: str | None = Field(None, description="base64 PNG of the average heartbeat (?plot=true)")


class SiteOut(BaseModel):
    site: str = Field(description="auscultation site: AV, PV, TV, MV or Phc")
    source: str | None
    duration_s: float | None
    quality: str | None = Field(description="good / fair / poor")
    heart_rate_bpm: float | None
    cycles: int | None
    p_murmur_heard: float = Field(description="P(Murmur=Present) of this site's recording")
    heard: bool = Field(description="the murmur is heard at this site (in murmur_locations)")
    warnings: list[str]
    input: InputOut | None = None


class LocationsOut(BaseModel):
    label: str = Field(description="CirCor's '+'-joined sites where the murmur is heard, or 'nan'")
    sites: dict[str, float] = Field(description="site -> probability that the murmur is heard there")


class OutcomeOut(BaseModel):
    label: str
    probabilities: dict[str, float]


class PatientResponse(BaseModel):
    labels: dict[str, str]
    features: list[FeatureOut]
    murmur_locations: LocationsOut
    most_audible_location: str
    outcome: OutcomeOut | None
    sites: list[SiteOut]
    warnings: list[str]
    model: str
    elapsed_s: float
    plot_png: str | None = Field(None, description="base64 PNG of the patient figure, one panel per site (?plot=true)")


class AskResponse(BaseModel):
    question: str
    answer: str
    input: InputOut
    warnings: list[str]
    model: str


class ErrorResponse(BaseModel):
    detail: str
    reason: str


class Health(BaseModel):
    status: str
    model: str
    sampling_rate: int
    ask: bool
    segmentation: bool
    limits: dict[str, float]


UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["file"],
                "properties": {"file": {"type": "string", "format": "binary",
                                        "description": "WAV or FLAC, any rate, mono or stereo"}}}},
            "audio/wav": {"schema": {"type": "string", "format": "binary"}},
            "audio/flac": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
PATIENT_BODY = {
    "requestBody": {
        "required": True,
        "content": {"multipart/form-data": {"schema": {
            "type": "object",
            "properties": {site: {"type": "string", "format": "binary",
                                  "description": f"the recording at {site} (WAV or FLAC)"}
                           for site in ("AV", "PV", "TV", "MV", "Phc")}}}},
    }
}
ERRORS = {code: {"model": ErrorResponse} for code in (400, 408, 413, 415, 422, 503)}
