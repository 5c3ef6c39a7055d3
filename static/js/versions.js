// Answer versions: Regenerate and Edit keep the answers they replace, browsable as ‹ 1/2 ›.
// An answer's own fields are the version shown; `versions` keeps every version (the shown one
// as of its last switch), each with the prompt it answered, and `version` says which is shown.

const FIELDS = ["content", "reasoning", "model", "status", "error", "errorStatus", "usage", "chatId", "seq"];

function snapshot(message, prompt) {
  const copy = { prompt };
  for (const field of FIELDS) if (message[field] !== undefined) copy[field] = message[field];
  return copy;
}

const countOf = (message) => message.versions?.length ?? 1;

export const versionLabel = (message) => `${(message.version ?? 0) + 1}/${countOf(message)}`;
export const hasVersions = (message) => countOf(message) > 1;

// Keeps the shown version of `answer` (which answered `question`) and starts an empty one.
export function addVersion(answer, question) {
  answer.versions ??= [];
  answer.versions[answer.version ?? 0] = snapshot(answer, question?.content);
  for (const field of FIELDS) delete answer[field];
  answer.versions.push(null);
  answer.version = answer.versions.length - 1;
}

// Shows version `index` of `answer`: its text, and the prompt it answered in `question`.
export function showVersion(answer, question, index) {
  if (!answer.versions || index < 0 || index >= answer.versions.length) return;
  answer.versions[answer.version ?? 0] = snapshot(answer, question?.content);
  const chosen = answer.versions[index];
  for (const field of FIELDS) delete answer[field];
  const { prompt, ...fields } = chosen;
  Object.assign(answer, fields);
  if (question && prompt !== undefined) question.content = prompt;
  answer.version = index;
  answer.changedAt = Date.now();
}
