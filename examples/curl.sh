#!/usr/bin/env bash
# tuneserve with curl (and jq to read the answers): every task, a streamed chat, a file, a job.
#   TUNESERVE_URL=http://127.0.0.1:8000 TUNESERVE_API_KEY=… examples/curl.sh
# The job trains a new model "$EXAMPLE_MODEL:curl" (default sentiment:curl).
set -euo pipefail
URL="${TUNESERVE_URL:-http://127.0.0.1:8000}"
MODEL="${EXAMPLE_MODEL:-sentiment}"
DATA="$(dirname "$0")/data"
auth=()
if [[ -n "${TUNESERVE_API_KEY:-}" ]]; then auth=(-H "Authorization: Bearer $TUNESERVE_API_KEY"); fi
post() { curl -sS --fail-with-body "${auth[@]}" -H 'Content-Type: application/json' "$URL$1" -d "$2"; }

post /v1/classify "{\"model\": \"$MODEL\", \"inputs\": [\"A wonderful film.\", \"A dull mess.\"]}" \
  | jq -c '[.results[] | {label: .label, score: .score}]'
post /v1/ner '{"inputs": "Angela Merkel visited Paris."}' | jq -c '[.results[0].entities[] | [.text, .label]]'
post /v1/qa '{"question": "Who wrote it?", "context": "The book was written by Mary Shelley."}' \
  | jq -r '.results[0].answer'
post /v1/translate '{"inputs": "The woman buys the book."}' | jq -r '.results[0].translation'
# streamed: server-sent events, one chat.completion.chunk per "data:" line, then [DONE]
post /v1/chat/completions \
  '{"messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 8, "stream": true}' \
  | sed -n 's/^data: //p' | grep -v '^\[DONE\]$' | jq -j '.choices[0].delta.content // ""'
echo

file=$(curl -sS --fail-with-body "${auth[@]}" "$URL/v1/files" \
  -F purpose=fine-tune -F "file=@$DATA/reviews.jsonl" | jq -r .id)
job=$(post /v1/fine_tuning/jobs \
  "{\"model\": \"$MODEL\", \"training_file\": \"$file\", \"suffix\": \"curl\", \"hyperparameters\": {\"n_epochs\": 1}}" \
  | jq -r .id)
echo "job $job on $file"
while true; do
  status=$(curl -sS --fail-with-body "${auth[@]}" "$URL/v1/fine_tuning/jobs/$job" | jq -r .status)
  case "$status" in succeeded|failed|cancelled) break ;; esac
  sleep 1
done
curl -sS "${auth[@]}" "$URL/v1/fine_tuning/jobs/$job/events?limit=3" | jq -r '.data[].message'
echo "job $job $status"
[[ "$status" == succeeded ]]
