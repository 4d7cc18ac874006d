"use strict";

// The deploy service's page: sign in with a token, upload, register, deploy,
// and watch a deployment. It talks to the service's own /api only, and puts
// every text from the API into the page as text, never as HTML.

const TOKEN_KEY = "deploy-service-token";
const LIST_LIMIT = 100;
// Statuses in which the worker is acting, so the next step comes soon.
const BUSY = new Set(["queued", "copying", "starting", "stopping", "withdrawing"]);
const POLL_BUSY_MS = 1000;
// A settled deployment changes only when its process ends or dies; the
// service checks the master VM at most every STATUS_CHECK_SECONDS anyway.
const POLL_SETTLED_MS = 5000;
// Which lifecycle action makes sense in which status, as the API decides.
const ACTIONS = {
  stop: new Set(["running"]),
  start: new Set(["stopped", "finished", "failed"]),
  withdraw: new Set(["running", "stopped", "finished", "failed"]),
};

const state = {
  token: null,
  applications: new Map(),
  instances: new Map(),
  watched: null,
  shown: null,
  timer: null,
};

function $(id) {
  return document.getElementById(id);
}

// --- Talking to the API ---------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// Every error of the API reads {"errors": [{"status": N, "detail": "..."}]};
// anything else (a proxy's page, gunicorn's own) is told by its status.
function errorDetail(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && Array.isArray(body.errors) && body.errors.length > 0) {
      return body.errors.map((error) => error.detail).join(" ");
    }
  } catch (_) {
    // Not JSON: fall through to the status alone.
  }
  return `The service answered ${status} without saying why.`;
}

function answerData(status, text) {
  if (status < 200 || status >= 300) {
    throw new ApiError(status, errorDetail(status, text));
  }
  return JSON.parse(text).data;
}

async function api(method, path, form) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: { Authorization: `Token ${state.token}` },
      body: form,
      cache: "no-store",
    });
  } catch (_) {
    throw new ApiError(0, "The service cannot be reached; check your connection.");
  }
  return answerData(response.status, await response.text());
}

// fetch() cannot report an upload's progress; XMLHttpRequest can.
function uploadWithProgress(form, onProgress) {
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("POST", "/api/apps/");
    request.setRequestHeader("Authorization", `Token ${state.token}`);
    request.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable && event.total > 0) {
        onProgress(event.loaded / event.total);
      }
    });
    request.upload.addEventListener("load", () => onProgress(1));
    request.addEventListener("load", () => {
      try {
        resolve(answerData(request.status, request.responseText));
      } catch (error) {
        reject(error);
      }
    });
    request.addEventListener("error", () =>
      reject(new ApiError(0, "The upload was cut off: the service cannot be reached.")),
    );
    request.send(form);
  });
}

// The form's fields without the empty ones, so the service's defaults apply.
function filledFields(formElement) {
  const form = new FormData(formElement);
  for (const [name, value] of [...form.entries()]) {
    if (typeof value === "string" && value.trim() === "") {
      form.delete(name);
    }
  }
  return form;
}

// --- Telling the user -----------------------------------------------------

function say(message, kind = "info") {
  const line = $("status-line");
  line.textContent = message;
  line.className = `status-line ${kind}`;
}

function report(error) {
  if (error instanceof ApiError && error.status === 401 && state.token) {
    signOut();
    say(`Signed out: ${error.message}`, "error");
    return;
  }
  say(error.message, "error");
}

function bytes(count) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = count;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${value} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

function moment(iso, timeOnly = false) {
  if (!iso) {
    return "";
  }
  const date = new Date(iso);
  return timeOnly ? date.toLocaleTimeString() : date.toLocaleString();
}

function cell(content) {
  const td = document.createElement("td");
  if (content instanceof Node) {
    td.append(content);
  } else {
    td.textContent = content ?? "";
  }
  return td;
}

function row(...contents) {
  const tr = document.createElement("tr");
  tr.append(...contents.map(cell));
  return tr;
}

function badge(status) {
  const span = document.createElement("span");
  span.className = `badge status-${status}`;
  span.textContent = status;
  return span;
}

function fillTable(body, rows, columns) {
  body.replaceChildren(...rows);
  if (rows.length === 0) {
    const empty = row("None yet.");
    empty.firstChild.colSpan = columns;
    empty.className = "empty";
    body.append(empty);
  }
}

// --- Signing in -----------------------------------------------------------

async function signIn(token) {
  state.token = token;
  try {
    const user = await api("GET", "/api/authenticate/");
    sessionStorage.setItem(TOKEN_KEY, token);
    $("user-name").textContent = user.name;
    $("sign-in").hidden = true;
    $("signed-in").hidden = false;
    $("workspace").hidden = false;
    say("Signed in.", "ok");
    await Promise.all([loadSshKey(), loadLists()]);
  } catch (error) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    say(error.message, "error");
  }
}

function signOut() {
  state.token = null;
  stopWatching();
  sessionStorage.removeItem(TOKEN_KEY);
  $("token").value = "";
  $("sign-in").hidden = false;
  $("signed-in").hidden = true;
  $("workspace").hidden = true;
  $("deployment").hidden = true;
}

async function loadSshKey() {
  const key = await api("GET", "/api/ssh-key/");
  $("ssh-key").textContent = key.public_key;
  $("ssh-fingerprint").textContent = key.fingerprint;
}

// --- Lists ----------------------------------------------------------------

function fillSelect(select, items, label, chosen) {
  const previous = chosen ?? select.value;
  select.replaceChildren(
    ...items.map(
      (item) => new Option(label(item), item.id, false, item.id === previous),
    ),
  );
}

async function loadLists(chosen = {}) {
  const query = `?limit=${LIST_LIMIT}`;
  const [applications, instances, deployments] = await Promise.all([
    api("GET", `/api/apps/${query}`),
    api("GET", `/api/lambda-instances/${query}`),
    api("GET", `/api/deployments/${query}`),
  ]);
  state.applications = new Map(applications.items.map((item) => [item.id, item]));
  state.instances = new Map(instances.items.map((item) => [item.id, item]));

  fillSelect(
    $("deploy-application"),
    applications.items,
    (item) => `${item.name} (${item.runtime}, ${bytes(item.size)})`,
    chosen.application,
  );
  fillSelect(
    $("deploy-instance"),
    instances.items,
    (item) => `${item.name} (${item.ssh_user}@${item.master_host}:${item.ssh_port})`,
    chosen.instance,
  );

  fillTable(
    $("applications"),
    applications.items.map((item) =>
      row(
        item.name,
        item.runtime,
        item.type,
        bytes(item.size),
        item.sha256.slice(0, 12),
        moment(item.created_at),
      ),
    ),
    6,
  );
  fillTable(
    $("instances"),
    instances.items.map((item) =>
      row(
        item.name,
        `${item.ssh_user}@${item.master_host}:${item.ssh_port}`,
        item.deploy_dir,
        badge(item.status),
        moment(item.created_at),
      ),
    ),
    5,
  );
  fillTable($("deployments"), deployments.items.map(deploymentRow), 5);
}

function applicationName(id) {
  return state.applications.get(id)?.name ?? id;
}

function instanceName(id) {
  return state.instances.get(id)?.name ?? id;
}

function deploymentRow(deployment) {
  const button = document.createElement("button");
  button.type = "button";
  button.textContent = "Watch";
  button.setAttribute(
    "aria-label",
    `Watch the deployment of ${applicationName(deployment.application_id)}`,
  );
  button.addEventListener("click", () => watch(deployment.id));
  return row(
    applicationName(deployment.application_id),
    instanceName(deployment.lambda_instance_id),
    badge(deployment.status),
    moment(deployment.updated_at),
    button,
  );
}

// --- Watching a deployment ------------------------------------------------

function stopWatching() {
  clearTimeout(state.timer);
  state.watched = null;
  state.shown = null;
}

function watch(id) {
  stopWatching();
  state.watched = id;
  $("deployment").hidden = false;
  poll();
}

async function poll() {
  const id = state.watched;
  let delay = POLL_BUSY_MS;
  try {
    const deployment = await api("GET", `/api/deployments/${id}/`);
    if (id !== state.watched) {
      return;
    }
    const changed = state.shown?.status !== deployment.status;
    showDeployment(deployment);
    if (!BUSY.has(deployment.status)) {
      delay = POLL_SETTLED_MS;
    }
    if (changed) {
      announce(deployment);
      loadLists().catch(report);
    }
  } catch (error) {
    report(error);
    if (error.status === 404) {
      stopWatching();
      return;
    }
    delay = POLL_SETTLED_MS;
  }
  if (id === state.watched && state.token) {
    state.timer = setTimeout(poll, delay);
  }
}

function announce(deployment) {
  const name = applicationName(deployment.application_id);
  if (deployment.status === "failed") {
    const reason = deployment.error ?? "no reason given";
    say(`The deployment of ${name} failed: ${reason}`, "error");
  } else {
    say(`The deployment of ${name} is ${deployment.status}.`, "ok");
  }
}

function showDeployment(deployment) {
  state.shown = deployment;
  $("deployment-id").textContent = deployment.id;
  $("deployment-application").textContent = applicationName(deployment.application_id);
  $("deployment-instance").textContent = instanceName(deployment.lambda_instance_id);
  const status = $("deployment-status");
  status.textContent = deployment.status;
  status.className = `badge status-${deployment.status}`;
  $("deployment-path").textContent =
    deployment.remote_path ??
    (deployment.status === "withdrawn" ? "removed (withdrawn)" : "not copied yet");
  $("deployment-process").textContent = deployment.process_id
    ? `process ${deployment.process_id}`
    : deployment.flink_job_id
      ? `Flink job ${deployment.flink_job_id}`
      : "";
  $("deployment-checked").textContent = moment(deployment.checked_at);

  showCopyProgress(deployment);

  const problem = deployment.error || deployment.check_error;
  $("deployment-error").hidden = !problem;
  $("deployment-error").textContent = problem ?? "";

  for (const button of document.querySelectorAll("[data-action]")) {
    const action = button.dataset.action;
    const possible = ACTIONS[action].has(deployment.status);
    // A deployment that failed before its copy was in place has nothing to start.
    button.disabled =
      !possible || (action === "start" && deployment.remote_path == null);
  }

  $("deployment-steps").replaceChildren(...(deployment.steps ?? []).map(stepRow));
}

// The copy's progress comes with the deployment while it is known; older
// services do not send it, and then there is no bar.
function showCopyProgress(deployment) {
  const sent = deployment.bytes_sent;
  const total = deployment.bytes_total;
  const known = typeof sent === "number" && typeof total === "number";
  $("copy").hidden = !known;
  if (!known) {
    return;
  }
  const bar = $("copy-progress");
  bar.max = Math.max(total, 1);
  bar.value = total === 0 ? 1 : Math.min(sent, total);
  const percent = total === 0 ? 100 : Math.floor((100 * Math.min(sent, total)) / total);
  $("copy-text").textContent = `${bytes(sent)} of ${bytes(total)} (${percent}%)`;
}

function stepRow(step) {
  let output = "";
  if (step.output) {
    output = document.createElement("pre");
    output.textContent = step.output;
  }
  let finished = moment(step.finished_at, true);
  if (step.started_at && step.finished_at) {
    const seconds = (new Date(step.finished_at) - new Date(step.started_at)) / 1000;
    finished += ` (${seconds.toFixed(1)} s)`;
  }
  const started = moment(step.started_at, true);
  return row(step.name, badge(step.status), started, finished, output);
}

// --- Forms and buttons ----------------------------------------------------

function showUploadProgress(fraction) {
  const percent = Math.round(fraction * 100);
  $("upload-progress").value = percent;
  $("upload-percent").textContent = `${percent}%`;
}

async function submitting(formElement, work) {
  const button = formElement.querySelector("button[type=submit]");
  button.disabled = true;
  try {
    await work();
  } catch (error) {
    report(error);
  } finally {
    button.disabled = false;
  }
}

function onUpload(event) {
  event.preventDefault();
  const formElement = event.target;
  submitting(formElement, async () => {
    showUploadProgress(0);
    say("Uploading…");
    const application = await uploadWithProgress(
      filledFields(formElement),
      showUploadProgress,
    );
    showUploadProgress(1);
    say(`Uploaded ${application.name} (${bytes(application.size)}).`, "ok");
    formElement.reset();
    await loadLists({ application: application.id });
  });
}

function onRegister(event) {
  event.preventDefault();
  const formElement = event.target;
  submitting(formElement, async () => {
    const instance = await api(
      "POST",
      "/api/lambda-instances/",
      filledFields(formElement),
    );
    say(`Registered the lambda instance ${instance.name}.`, "ok");
    formElement.reset();
    await loadLists({ instance: instance.id });
  });
}

function onDeploy(event) {
  event.preventDefault();
  const formElement = event.target;
  submitting(formElement, async () => {
    const applicationId = $("deploy-application").value;
    const form = new FormData();
    form.append("lambda_instance_id", $("deploy-instance").value);
    const deployment = await api(
      "POST",
      `/api/apps/${encodeURIComponent(applicationId)}/deploy/`,
      form,
    );
    say(`Deployment accepted; it is ${deployment.status}.`, "ok");
    watch(deployment.id);
  });
}

async function onAction(event) {
  const action = event.target.dataset.action;
  const deployment = state.shown;
  if (!deployment) {
    return;
  }
  event.target.disabled = true;
  try {
    const form = new FormData();
    form.append("lambda_instance_id", deployment.lambda_instance_id);
    const answer = await api(
      "POST",
      `/api/apps/${encodeURIComponent(deployment.application_id)}/${action}/`,
      form,
    );
    say(`Asked to ${action} the application; it is ${answer.status}.`, "ok");
    watch(answer.id);
  } catch (error) {
    report(error);
    event.target.disabled = false;
  }
}

function start() {
  $("sign-in-form").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", () => {
    signOut();
    say("Signed out.");
  });
  $("refresh").addEventListener("click", () => loadLists().catch(report));
  $("upload-form").addEventListener("submit", onUpload);
  $("instance-form").addEventListener("submit", onRegister);
  $("deploy-form").addEventListener("submit", onDeploy);
  for (const button of document.querySelectorAll("[data-action]")) {
    button.addEventListener("click", onAction);
  }

  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) {
    signIn(token);
  }
}

document.addEventListener("DOMContentLoaded", start);
