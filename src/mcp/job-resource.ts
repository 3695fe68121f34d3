// A fine-tune job as an MCP resource (`fine-tune-job://{id}`), so an assistant can attach it to a
// conversation: its record and the summary of its training metrics, read by one operation through
// the pipeline like any tool call.

/** The resource template; `{id}` is the job's id, percent-encoded. */
export const JOB_URI = 'fine-tune-job://{id}';

const PREFIX = 'fine-tune-job://';

/** The job id a resource URI names, or undefined for another URI. */
export function jobIdOfUri(uri: string): string | undefined {
  if (!uri.startsWith(PREFIX)) return undefined;
  let id: string;
  try {
    id = decodeURIComponent(uri.slice(PREFIX.length));
  } catch {
    return undefined;
  }
  return id === '' ? undefined : id;
}

export const JOB_RESOURCE_QUERY = `query FineTuneJobResource($id: ID!) {
  fineTuneJob(id: $id) {
    id
    name
    uuid
    orgUuid
    status
    upstreamStatus
    isTerminal
    allowedActions
    config {
      model
      datasets {
        name
        split
        fileIds
      }
    }
    createdAt
    updatedAt
    inferenceConfigPath
    metrics {
      summary {
        checkpoints
        latestStep
        latestLoss
        bestLoss
        bestLossStep
        latestEvalLoss
        bestEvalLoss
        improving
      }
    }
  }
}`;

/** The jobs `resources/list` offers: the latest few, enough to pick one to attach. */
export const RECENT_JOBS_QUERY = `query RecentJobResources {
  fineTuneJobs(limit: 20) {
    id
    name
    status
  }
}`;
