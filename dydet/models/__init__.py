from dydet.models.yolo.model import DynamicYOLO

__all__ = ["DynamicYOLO"]
