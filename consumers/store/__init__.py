"""The ``store`` consumer and the built-in stores (``sqlite``, ``postgresql``).

The stores are plug-ins like any other (entry-point group ``newswire.stores``,
see :mod:`newswire.store`); the consumer writes to whichever one its URL names.
"""

from consumers.store.consumer import StoreConsumer, StoreMetrics, StoreSettings

__all__ = ["StoreConsumer", "StoreMetrics", "StoreSettings"]
