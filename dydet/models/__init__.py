from dydet.models.dynamic_yolo import DynamicYOLO

__all__ = ["DynamicYOLO"]
