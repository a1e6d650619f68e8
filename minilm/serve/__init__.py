"""Serving: the models of --ckpt behind HTTP with FastAPI (`python -m minilm.serve`, docs/serving.md).

Read in this order, from the request to the model:
    config.py      ServeConfig: every flag and the limit it sets
    app.py         the FastAPI app: routes, the bearer-token check, CORS, the error format
    body_guard.py  a body too large (413) or not UTF-8 (400), refused before any parsing
    schemas.py     the JSON of each endpoint (pydantic), validated before anything runs
    service.py     which model answers, the cheap limits, queueing and waiting (on the event loop)
    scheduler.py   a bounded queue and the worker threads that batch requests (one per lane)
    inference.py   what a worker computes: one forward pass per batch, or a generation token by token
    encode.py      texts to model inputs, checked against the model's context
    models.py      the loaded models and what each can do
    limits.py      RequestError: the status, the field and the message of a refusal
    metrics.py     the Prometheus metrics of GET /metrics
    server.py      uvicorn around the app: the port opened first, a shutdown bounded by --shutdown_timeout

Chat, OpenAI's protocol (POST /v1/chat/completions) and its page (GET /chat):
    chat_routes.py  the two routes; a stream's events as OpenAI's chunks
    openai_chat.py  the request, the answer, the chunks and the error, in OpenAI's shapes
    chat_job.py     what a worker does: the chat template, the context check, decoding to the end of the turn
    chat_stream.py  AnswerText: whole characters only, cut before a stop string (held back while it may be one)
    static/chat.html  the page: one file, streams the answer in, asks for the API key when it is needed
"""
