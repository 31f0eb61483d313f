// The independent IAM evaluator: @cloud-copilot/iam-simulate decides each request it reads.
//
// Input: JSON lines on stdin, one request each:
//   {"id", "principal" (the ARN AWS reports for the caller: a role session's
//    arn:aws:sts::…:assumed-role/…, a user's ARN, or a service principal such as
//    "lambda.amazonaws.com"), "action", "resource", "resourceAccount", "context" (condition
//    keys the call sets: {key: string | string[]}), "identityPolicies" ([{name, policy}]),
//    "resourcePolicy" (a document, or null: bucket, key, trust, secret or queue policy)}
// Output: one JSON line per request, in order, flushed as it is decided, so a caller may
// also hold the process open and ask one request at a time:
//   {"id", "result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "error",
//    "errors" (when the package refused the input), "ignoredContextKeys" (keys it dropped
//    as not carried by the action's requests), "restoredContextKeys" (see below)}
//
// The package fills no global condition keys itself (its README: "Automatically populating
// context keys from the request" is still to come), so this driver fills the ones AWS
// documents for every signed request, unless the request gives them: aws:PrincipalArn (a
// role session's role), aws:PrincipalAccount, aws:PrincipalIsAWSService,
// aws:PrincipalServiceName, aws:ResourceAccount
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html).
//
// One correction to the package's input handling, never to its decisions: it drops every
// context key its list for the action does not name, and matches the list's variable keys
// only after a "/" (aws:ResourceTag/${TagKey}), so it drops kms:EncryptionContext:SecretARN,
// which its own list names as kms:EncryptionContext:${EncryptionContextKey} and AWS KMS
// documents ("AWS KMS condition keys", kms:EncryptionContext:context-key,
// https://docs.aws.amazon.com/kms/latest/developerguide/conditions-kms.html). Such a key is
// put back and the request decided again by the package's runUnsafeSimulation (the same
// engine, without the key filter; the input was validated by the first run. Its resource
// policy goes in pre-loaded with a name: runUnsafeSimulation loads it without one, and
// then fails reading the name).
import { createInterface } from 'node:readline'
import { createValidatedPolicy } from '@cloud-copilot/iam-policy'
import {
  allowedContextKeysForRequest,
  runSimulation,
  runUnsafeSimulation
} from '@cloud-copilot/iam-simulate'

const SESSION = /^arn:([^:]+):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/

function globalKeys(principal, resourceAccount) {
  const keys = {}
  if (!principal.startsWith('arn:')) {
    keys['aws:PrincipalIsAWSService'] = 'true'
    keys['aws:PrincipalServiceName'] = principal
  } else {
    const session = SESSION.exec(principal)
    keys['aws:PrincipalIsAWSService'] = 'false'
    keys['aws:PrincipalArn'] = session
      ? `arn:${session[1]}:iam::${session[2]}:role/${session[3]}`
      : principal
    keys['aws:PrincipalAccount'] = principal.split(':')[4]
  }
  if (resourceAccount) keys['aws:ResourceAccount'] = resourceAccount
  return keys
}

function withGlobalKeys(context, principal, resourceAccount) {
  const given = new Set(Object.keys(context).map((key) => key.toLowerCase()))
  const filled = { ...context }
  for (const [key, value] of Object.entries(globalKeys(principal, resourceAccount))) {
    if (!given.has(key.toLowerCase())) filled[key] = value
  }
  return filled
}

// The dropped keys the package's own list allows through a ${...} variable key.
async function misfiltered(request, ignored) {
  const [service, action] = request.action.split(':')
  const allowed = await allowedContextKeysForRequest(
    service,
    action,
    request.resource,
    false,
    undefined
  )
  const prefixes = allowed
    .filter((key) => key.includes('${'))
    .map((key) => key.slice(0, key.indexOf('${')))
    .filter((prefix) => !prefix.endsWith('/'))
  return ignored.filter((key) =>
    prefixes.some((prefix) => key.toLowerCase().startsWith(prefix) && key.length > prefix.length)
  )
}

async function decide(request) {
  const simulation = {
    request: {
      principal: request.principal,
      action: request.action,
      resource: { resource: request.resource, accountId: request.resourceAccount },
      contextVariables: withGlobalKeys(
        request.context ?? {},
        request.principal,
        request.resourceAccount
      )
    },
    identityPolicies: request.identityPolicies ?? [],
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    resourcePolicy: request.resourcePolicy ?? undefined
  }
  const response = await runSimulation(simulation, { simulationMode: 'Strict' })
  if (response.resultType === 'error') {
    return { id: request.id, result: 'error', errors: response.errors }
  }
  if (response.resultType === 'wildcard') {
    const ignored = [...new Set(response.results.flatMap((r) => r.ignoredContextKeys ?? []))]
    return { id: request.id, result: response.overallResult, ignoredContextKeys: ignored }
  }
  const ignored = response.result.ignoredContextKeys ?? []
  const restored = await misfiltered(request, ignored)
  if (restored.length === 0) {
    return { id: request.id, result: response.overallResult, ignoredContextKeys: ignored }
  }
  const context = { ...simulation.request.contextVariables }
  for (const key of ignored) if (!restored.includes(key)) delete context[key]
  const resourcePolicy = simulation.resourcePolicy
    ? createValidatedPolicy(simulation.resourcePolicy, () => [], { name: 'resource policy' })
    : undefined
  const result = runUnsafeSimulation(
    {
      ...simulation,
      resourcePolicy,
      request: { ...simulation.request, contextVariables: context }
    },
    {}
  )
  return {
    id: request.id,
    result,
    ignoredContextKeys: ignored.filter((key) => !restored.includes(key)),
    restoredContextKeys: restored
  }
}

const lines = createInterface({ input: process.stdin, crlfDelay: Infinity })
for await (const line of lines) {
  if (!line.trim()) continue
  let answer
  try {
    answer = await decide(JSON.parse(line))
  } catch (error) {
    answer = { id: null, result: 'error', errors: { message: String(error?.stack ?? error) } }
  }
  process.stdout.write(JSON.stringify(answer) + '\n')
}
