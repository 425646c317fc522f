"""maskweb: AI object masking for photos in the browser."""
