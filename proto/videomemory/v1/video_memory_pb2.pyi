import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Video(_message.Message):
    __slots__ = ("name", "source_uri", "duration_ms", "width", "height", "fps", "grid_width", "grid_height", "frames", "segments", "tokens", "tokens_per_minute", "stored_bytes", "source_bytes", "content_class", "create_time")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    GRID_WIDTH_FIELD_NUMBER: _ClassVar[int]
    GRID_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BYTES_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CLASS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    name: str
    source_uri: str
    duration_ms: int
    width: int
    height: int
    fps: float
    grid_width: int
    grid_height: int
    frames: int
    segments: int
    tokens: int
    tokens_per_minute: float
    stored_bytes: int
    source_bytes: int
    content_class: str
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., source_uri: _Optional[str] = ..., duration_ms: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., grid_width: _Optional[int] = ..., grid_height: _Optional[int] = ..., frames: _Optional[int] = ..., segments: _Optional[int] = ..., tokens: _Optional[int] = ..., tokens_per_minute: _Optional[float] = ..., stored_bytes: _Optional[int] = ..., source_bytes: _Optional[int] = ..., content_class: _Optional[str] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IngestVideoRequest(_message.Message):
    __slots__ = ("uri", "chunk", "file_name", "fps", "budget_tokens_per_minute", "replace")
    URI_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    FILE_NAME_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    BUDGET_TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    REPLACE_FIELD_NUMBER: _ClassVar[int]
    uri: str
    chunk: bytes
    file_name: str
    fps: float
    budget_tokens_per_minute: float
    replace: bool
    def __init__(self, uri: _Optional[str] = ..., chunk: _Optional[bytes] = ..., file_name: _Optional[str] = ..., fps: _Optional[float] = ..., budget_tokens_per_minute: _Optional[float] = ..., replace: _Optional[bool] = ...) -> None: ...

class IngestVideoProgress(_message.Message):
    __slots__ = ("state", "received_bytes", "frames", "media_seconds", "duration_seconds", "already_indexed", "video")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[IngestVideoProgress.State]
        RECEIVING: _ClassVar[IngestVideoProgress.State]
        CODING: _ClassVar[IngestVideoProgress.State]
        DONE: _ClassVar[IngestVideoProgress.State]
    STATE_UNSPECIFIED: IngestVideoProgress.State
    RECEIVING: IngestVideoProgress.State
    CODING: IngestVideoProgress.State
    DONE: IngestVideoProgress.State
    STATE_FIELD_NUMBER: _ClassVar[int]
    RECEIVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    MEDIA_SECONDS_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ALREADY_INDEXED_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    state: IngestVideoProgress.State
    received_bytes: int
    frames: int
    media_seconds: float
    duration_seconds: float
    already_indexed: bool
    video: Video
    def __init__(self, state: _Optional[_Union[IngestVideoProgress.State, str]] = ..., received_bytes: _Optional[int] = ..., frames: _Optional[int] = ..., media_seconds: _Optional[float] = ..., duration_seconds: _Optional[float] = ..., already_indexed: _Optional[bool] = ..., video: _Optional[_Union[Video, _Mapping]] = ...) -> None: ...

class IngestFramesRequest(_message.Message):
    __slots__ = ("stream", "fps", "image", "time_ms")
    STREAM_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    stream: str
    fps: float
    image: bytes
    time_ms: int
    def __init__(self, stream: _Optional[str] = ..., fps: _Optional[float] = ..., image: _Optional[bytes] = ..., time_ms: _Optional[int] = ...) -> None: ...

class IngestFramesResponse(_message.Message):
    __slots__ = ("video", "frames_received", "segments_published")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    FRAMES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_PUBLISHED_FIELD_NUMBER: _ClassVar[int]
    video: Video
    frames_received: int
    segments_published: int
    def __init__(self, video: _Optional[_Union[Video, _Mapping]] = ..., frames_received: _Optional[int] = ..., segments_published: _Optional[int] = ...) -> None: ...

class GetVideoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class ListVideosRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListVideosResponse(_message.Message):
    __slots__ = ("videos", "next_page_token")
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    videos: _containers.RepeatedCompositeFieldContainer[Video]
    next_page_token: str
    def __init__(self, videos: _Optional[_Iterable[_Union[Video, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteVideoRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "image", "frame", "videos", "start_ms", "end_ms", "content_classes", "page_size", "page_token")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CLASSES_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    frame: str
    videos: _containers.RepeatedScalarFieldContainer[str]
    start_ms: int
    end_ms: int
    content_classes: _containers.RepeatedScalarFieldContainer[str]
    page_size: int
    page_token: str
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., frame: _Optional[str] = ..., videos: _Optional[_Iterable[str]] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., content_classes: _Optional[_Iterable[str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class SearchHit(_message.Message):
    __slots__ = ("frame", "tag", "score", "video", "segment_start_ms", "segment_end_ms", "content_class", "kind")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_START_MS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_END_MS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_CLASS_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    frame: str
    tag: str
    score: float
    video: str
    segment_start_ms: int
    segment_end_ms: int
    content_class: str
    kind: str
    def __init__(self, frame: _Optional[str] = ..., tag: _Optional[str] = ..., score: _Optional[float] = ..., video: _Optional[str] = ..., segment_start_ms: _Optional[int] = ..., segment_end_ms: _Optional[int] = ..., content_class: _Optional[str] = ..., kind: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "next_page_token", "embedder")
    HITS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    EMBEDDER_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[SearchHit]
    next_page_token: str
    embedder: str
    def __init__(self, hits: _Optional[_Iterable[_Union[SearchHit, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., embedder: _Optional[str] = ...) -> None: ...

class GetClipRequest(_message.Message):
    __slots__ = ("video", "start_ms", "end_ms", "token_budget", "plan", "include_code")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_CODE_FIELD_NUMBER: _ClassVar[int]
    video: str
    start_ms: int
    end_ms: int
    token_budget: int
    plan: str
    include_code: bool
    def __init__(self, video: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., token_budget: _Optional[int] = ..., plan: _Optional[str] = ..., include_code: _Optional[bool] = ...) -> None: ...

class Crop(_message.Message):
    __slots__ = ("x0", "y0", "x1", "y1", "tokens", "png")
    X0_FIELD_NUMBER: _ClassVar[int]
    Y0_FIELD_NUMBER: _ClassVar[int]
    X1_FIELD_NUMBER: _ClassVar[int]
    Y1_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    x0: int
    y0: int
    x1: int
    y1: int
    tokens: int
    png: bytes
    def __init__(self, x0: _Optional[int] = ..., y0: _Optional[int] = ..., x1: _Optional[int] = ..., y1: _Optional[int] = ..., tokens: _Optional[int] = ..., png: _Optional[bytes] = ...) -> None: ...

class ClipPart(_message.Message):
    __slots__ = ("frame", "tag", "time_seconds", "role", "resynthesised", "tokens", "image_tokens", "text_tokens", "png", "crops", "motion_mean_px", "trimmed", "text")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    RESYNTHESISED_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    IMAGE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TEXT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    CROPS_FIELD_NUMBER: _ClassVar[int]
    MOTION_MEAN_PX_FIELD_NUMBER: _ClassVar[int]
    TRIMMED_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    frame: str
    tag: str
    time_seconds: float
    role: str
    resynthesised: bool
    tokens: int
    image_tokens: int
    text_tokens: int
    png: bytes
    crops: _containers.RepeatedCompositeFieldContainer[Crop]
    motion_mean_px: float
    trimmed: bool
    text: str
    def __init__(self, frame: _Optional[str] = ..., tag: _Optional[str] = ..., time_seconds: _Optional[float] = ..., role: _Optional[str] = ..., resynthesised: _Optional[bool] = ..., tokens: _Optional[int] = ..., image_tokens: _Optional[int] = ..., text_tokens: _Optional[int] = ..., png: _Optional[bytes] = ..., crops: _Optional[_Iterable[_Union[Crop, _Mapping]]] = ..., motion_mean_px: _Optional[float] = ..., trimmed: _Optional[bool] = ..., text: _Optional[str] = ...) -> None: ...

class GopCode(_message.Message):
    __slots__ = ("anchor_format", "anchor", "p_codes")
    ANCHOR_FORMAT_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    P_CODES_FIELD_NUMBER: _ClassVar[int]
    anchor_format: str
    anchor: bytes
    p_codes: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, anchor_format: _Optional[str] = ..., anchor: _Optional[bytes] = ..., p_codes: _Optional[_Iterable[bytes]] = ...) -> None: ...

class Clip(_message.Message):
    __slots__ = ("video", "start_ms", "end_ms", "tokens", "token_budget", "coverage", "header", "parts", "dropped_frames", "code")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    START_MS_FIELD_NUMBER: _ClassVar[int]
    END_MS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    COVERAGE_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    PARTS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    video: str
    start_ms: int
    end_ms: int
    tokens: int
    token_budget: int
    coverage: float
    header: str
    parts: _containers.RepeatedCompositeFieldContainer[ClipPart]
    dropped_frames: _containers.RepeatedScalarFieldContainer[str]
    code: _containers.RepeatedCompositeFieldContainer[GopCode]
    def __init__(self, video: _Optional[str] = ..., start_ms: _Optional[int] = ..., end_ms: _Optional[int] = ..., tokens: _Optional[int] = ..., token_budget: _Optional[int] = ..., coverage: _Optional[float] = ..., header: _Optional[str] = ..., parts: _Optional[_Iterable[_Union[ClipPart, _Mapping]]] = ..., dropped_frames: _Optional[_Iterable[str]] = ..., code: _Optional[_Iterable[_Union[GopCode, _Mapping]]] = ...) -> None: ...

class ResolveFrameRequest(_message.Message):
    __slots__ = ("frame", "include_image", "full_resolution")
    FRAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGE_FIELD_NUMBER: _ClassVar[int]
    FULL_RESOLUTION_FIELD_NUMBER: _ClassVar[int]
    frame: str
    include_image: bool
    full_resolution: bool
    def __init__(self, frame: _Optional[str] = ..., include_image: _Optional[bool] = ..., full_resolution: _Optional[bool] = ...) -> None: ...

class ResolvedFrame(_message.Message):
    __slots__ = ("requested", "frame", "tag", "exact", "source_uri", "time_seconds", "source_index", "segment", "segment_start_ms", "segment_end_ms", "role", "anchor", "sent", "psnr_db", "notes", "png", "image_origin")
    REQUESTED_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    SOURCE_URI_FIELD_NUMBER: _ClassVar[int]
    TIME_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_INDEX_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_START_MS_FIELD_NUMBER: _ClassVar[int]
    SEGMENT_END_MS_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    ANCHOR_FIELD_NUMBER: _ClassVar[int]
    SENT_FIELD_NUMBER: _ClassVar[int]
    PSNR_DB_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    PNG_FIELD_NUMBER: _ClassVar[int]
    IMAGE_ORIGIN_FIELD_NUMBER: _ClassVar[int]
    requested: str
    frame: str
    tag: str
    exact: bool
    source_uri: str
    time_seconds: float
    source_index: int
    segment: int
    segment_start_ms: int
    segment_end_ms: int
    role: str
    anchor: str
    sent: bool
    psnr_db: float
    notes: _containers.RepeatedScalarFieldContainer[str]
    png: bytes
    image_origin: str
    def __init__(self, requested: _Optional[str] = ..., frame: _Optional[str] = ..., tag: _Optional[str] = ..., exact: _Optional[bool] = ..., source_uri: _Optional[str] = ..., time_seconds: _Optional[float] = ..., source_index: _Optional[int] = ..., segment: _Optional[int] = ..., segment_start_ms: _Optional[int] = ..., segment_end_ms: _Optional[int] = ..., role: _Optional[str] = ..., anchor: _Optional[str] = ..., sent: _Optional[bool] = ..., psnr_db: _Optional[float] = ..., notes: _Optional[_Iterable[str]] = ..., png: _Optional[bytes] = ..., image_origin: _Optional[str] = ...) -> None: ...

class ResolveCitationsRequest(_message.Message):
    __slots__ = ("text", "include_images")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_IMAGES_FIELD_NUMBER: _ClassVar[int]
    text: str
    include_images: bool
    def __init__(self, text: _Optional[str] = ..., include_images: _Optional[bool] = ...) -> None: ...

class Citation(_message.Message):
    __slots__ = ("tag", "start", "resolved", "error", "error_code")
    TAG_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    tag: str
    start: int
    resolved: ResolvedFrame
    error: str
    error_code: str
    def __init__(self, tag: _Optional[str] = ..., start: _Optional[int] = ..., resolved: _Optional[_Union[ResolvedFrame, _Mapping]] = ..., error: _Optional[str] = ..., error_code: _Optional[str] = ...) -> None: ...

class ResolveCitationsResponse(_message.Message):
    __slots__ = ("citations",)
    CITATIONS_FIELD_NUMBER: _ClassVar[int]
    citations: _containers.RepeatedCompositeFieldContainer[Citation]
    def __init__(self, citations: _Optional[_Iterable[_Union[Citation, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("forecast_minutes", "forecast_minutes_by_class")
    class ForecastMinutesByClassEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    FORECAST_MINUTES_FIELD_NUMBER: _ClassVar[int]
    FORECAST_MINUTES_BY_CLASS_FIELD_NUMBER: _ClassVar[int]
    forecast_minutes: float
    forecast_minutes_by_class: _containers.ScalarMap[str, float]
    def __init__(self, forecast_minutes: _Optional[float] = ..., forecast_minutes_by_class: _Optional[_Mapping[str, float]] = ...) -> None: ...

class ClassUsage(_message.Message):
    __slots__ = ("content_class", "segments", "minutes", "tokens", "tokens_per_minute")
    CONTENT_CLASS_FIELD_NUMBER: _ClassVar[int]
    SEGMENTS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    content_class: str
    segments: int
    minutes: float
    tokens: int
    tokens_per_minute: float
    def __init__(self, content_class: _Optional[str] = ..., segments: _Optional[int] = ..., minutes: _Optional[float] = ..., tokens: _Optional[int] = ..., tokens_per_minute: _Optional[float] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("videos", "minutes", "tokens", "tokens_per_minute", "stored_bytes", "by_class", "video_tokens_per_minute_std", "forecast_minutes", "forecast_tokens", "forecast_tokens_low", "forecast_tokens_high")
    VIDEOS_FIELD_NUMBER: _ClassVar[int]
    MINUTES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_MINUTE_FIELD_NUMBER: _ClassVar[int]
    STORED_BYTES_FIELD_NUMBER: _ClassVar[int]
    BY_CLASS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_TOKENS_PER_MINUTE_STD_FIELD_NUMBER: _ClassVar[int]
    FORECAST_MINUTES_FIELD_NUMBER: _ClassVar[int]
    FORECAST_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FORECAST_TOKENS_LOW_FIELD_NUMBER: _ClassVar[int]
    FORECAST_TOKENS_HIGH_FIELD_NUMBER: _ClassVar[int]
    videos: int
    minutes: float
    tokens: int
    tokens_per_minute: float
    stored_bytes: int
    by_class: _containers.RepeatedCompositeFieldContainer[ClassUsage]
    video_tokens_per_minute_std: float
    forecast_minutes: float
    forecast_tokens: float
    forecast_tokens_low: float
    forecast_tokens_high: float
    def __init__(self, videos: _Optional[int] = ..., minutes: _Optional[float] = ..., tokens: _Optional[int] = ..., tokens_per_minute: _Optional[float] = ..., stored_bytes: _Optional[int] = ..., by_class: _Optional[_Iterable[_Union[ClassUsage, _Mapping]]] = ..., video_tokens_per_minute_std: _Optional[float] = ..., forecast_minutes: _Optional[float] = ..., forecast_tokens: _Optional[float] = ..., forecast_tokens_low: _Optional[float] = ..., forecast_tokens_high: _Optional[float] = ...) -> None: ...
