// Versions: Regenerate and Edit keep what they replace, browsable as ‹ 1/2 ›.
// An answer's own fields are the version shown; `versions` keeps every version (the shown one
// as of its last switch), each with the prompt it answered, and `version` says which is shown.
// An earlier question edited keeps the turns that followed it as branches, ChatGPT's way: the
// question's `branches` holds each branch's text, images and later messages, `branch` the one
// shown, whose later messages are the conversation's own.

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

const branchCount = (question) => question.branches?.length ?? 1;

export const branchLabel = (question) => `${(question.branch ?? 0) + 1}/${branchCount(question)}`;
export const hasBranches = (question) => branchCount(question) > 1;

function branchOf(messages, index) {
  const { content, images } = messages[index];
  return { content, images, later: messages.slice(index + 1) };
}

function showBranchOf(messages, index, chosen) {
  const question = messages[index];
  question.content = chosen.content;
  if (chosen.images) question.images = chosen.images;
  else delete question.images;
  messages.splice(index + 1, Infinity, ...chosen.later);
}

// Keeps the question at `index` and every message after it as a branch, then shows a new
// branch: the question as `text`, nothing after it yet.
export function addBranch(messages, index, text) {
  const question = messages[index];
  question.branches ??= [];
  question.branches[question.branch ?? 0] = branchOf(messages, index);
  question.branches.push(null);
  question.branch = question.branches.length - 1;
  showBranchOf(messages, index, { content: text, images: question.images, later: [] });
}

// Shows branch `to` of the question at `index`, keeping the shown one as it is now.
export function showBranch(messages, index, to) {
  const question = messages[index];
  if (!question.branches || to < 0 || to >= question.branches.length) return;
  question.branches[question.branch ?? 0] = branchOf(messages, index);
  showBranchOf(messages, index, question.branches[to]);
  question.branch = to;
}
