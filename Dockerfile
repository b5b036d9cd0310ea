# thinkctl on GPU: vLLM's official OpenAI image (same engine version as the `gpu` extra).
#   docker build -t thinkctl .
#   docker run --gpus all -p 8000:8000 -e THINKCTL_API_KEY=... thinkctl \
#       --model /models/my-model --probe /models/my-model/probe
FROM vllm/vllm-openai:v0.33.0

WORKDIR /opt/thinkctl
COPY pyproject.toml README.md ./
COPY thinkctl ./thinkctl
COPY control ./control
COPY engine ./engine
COPY server ./server
COPY probes ./probes
COPY models ./models
COPY calibration ./calibration
COPY bench ./bench
COPY testbed ./testbed
COPY recipes ./recipes
# vLLM is already in the image: thinkctl and its serve-only core dependencies, without
# touching it (no engine extra), and calibrate's tools for `thinkctl calibrate` on the GPU.
# DL3013: versions are pyproject's (the image pins the engine).
# hadolint ignore=DL3013
RUN pip install --no-cache-dir ".[calibrate]" \
    && useradd --create-home --uid 10001 thinkctl

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["thinkctl", "serve", "--host", "0.0.0.0", "--port", "8000"]
