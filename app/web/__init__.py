"""The HTTP face: routes, views, middleware, parameters, the OpenAPI description and the queue's aiohttp boundary."""
