"""COCO evaluation of yolomodels networks: inference runner, pycocotools metrics, reports."""
