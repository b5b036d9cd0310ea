# thinkctl on GPU: vLLM's official OpenAI image (same engine version as the `gpu` extra).
#   docker build -t thinkctl .
#   docker run --gpus all -p 8000:8000 -e THINKCTL_API_KEY=... thinkctl \
#       --model /models/my-model --probe /models/my-model/probe
FROM vllm/vllm-openai:v0.32.0

WORKDIR /opt/thinkctl
COPY pyproject.toml README.md ./
COPY thinkctl ./thinkctl
COPY server ./server
COPY engine ./engine
COPY probes ./probes
COPY calibration ./calibration
COPY bench ./bench
COPY testbed ./testbed
# vLLM is already in the image: install thinkctl without touching it.
RUN pip install --no-cache-dir --no-deps . \
    && pip install --no-cache-dir "fastapi>=0.115" "uvicorn>=0.30" "scikit-learn>=1.5" \
       "safetensors>=0.4" "math-verify>=0.7" "prometheus_client>=0.20" "gguf>=0.10" \
    && useradd --create-home --uid 10001 thinkctl

USER 10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python3", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=4)"]
ENTRYPOINT ["thinkctl", "serve", "--host", "0.0.0.0", "--port", "8000"]
