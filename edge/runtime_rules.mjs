// cloudfront-js-2.0's documented JavaScript, as rules on a function's source text.
//
// CloudFront accepts a function it cannot run (CreateFunction does not compile it), and Node and
// njs both run code CloudFront refuses, so the rules AWS writes down are checked here, on the
// bytes that are deployed. Each rule names the page it comes from (the list, with links, is in
// edge/README.md). A small tokenizer, not a parser: it knows strings, template literals, regular
// expression literals and comments, and tracks brackets and function bodies, which is all the
// rules below need.

export const SIZE_LIMIT_BYTES = 10 * 1024; // "Maximum size of a function: 10 KB" (quotas)
export const IMPORT_LINE = "import cf from 'cloudfront';";

// Names a function cannot reach on CloudFront: no dynamic code evaluation, no network, file
// system or timers ("Runtime", restrictions page), and nothing of Node's.
const FORBIDDEN_NAMES = new Map([
  ['eval', 'dynamic code evaluation is not supported'],
  ['Function', 'dynamic code evaluation (the Function constructor) is not supported'],
  ['setTimeout', 'timers are not available'],
  ['setInterval', 'timers are not available'],
  ['setImmediate', 'timers are not available'],
  ['clearTimeout', 'timers are not available'],
  ['clearInterval', 'timers are not available'],
  ['clearImmediate', 'timers are not available'],
  ['queueMicrotask', 'not among the documented globals'],
  ['fetch', 'no network access'],
  ['XMLHttpRequest', 'no network access'],
  ['WebSocket', 'no network access'],
  ['require', 'no require(): the only module the deployed function may use is cloudfront, by import'],
  ['module', 'Node-only (CommonJS)'],
  ['exports', 'Node-only (CommonJS)'],
  ['process', 'Node-only: no process, no environment variables'],
  ['__dirname', 'Node-only (file system)'],
  ['__filename', 'Node-only (file system)'],
]);

// Statements and forms outside the documented list (ES 5.1 statements plus const, let, async,
// await; arrow functions, rest parameters, template literals).
const UNDOCUMENTED_KEYWORDS = new Map([
  ['class', 'class declarations are not among the documented features'],
  ['yield', 'generators are not among the documented features'],
  ['with', 'with is not allowed in strict mode, and functions always run in strict mode'],
  ['export', 'a CloudFront function exports nothing: CloudFront calls its top-level handler'],
]);

// A name before '(' that makes the parentheses part of a statement or an operand, not a call.
const NOT_A_CALLEE = new Set([
  'if', 'for', 'while', 'switch', 'catch', 'with', 'return', 'typeof', 'void', 'delete', 'in',
  'of', 'instanceof', 'new', 'case', 'do', 'else', 'throw', 'await', 'yield', 'function',
]);

// After these names a '/' starts a regular expression, not a division.
const REGEX_AFTER = new Set([
  'return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'instanceof', 'new', 'delete', 'void',
  'throw', 'await', 'yield',
]);

const ASYNC_ONLY_DECLARED =
  'async only on a top-level function declaration: async arguments and closures are not supported';

/**
 * Every way `source` leaves cloudfront-js-2.0's documented JavaScript, as
 * `{ line, rule, message }` objects in source order; an empty array when it keeps to it.
 */
export function runtimeViolations(source) {
  const found = [];
  const report = (line, rule, message) => found.push({ line, rule, message });

  const bytes = Buffer.byteLength(source, 'utf8');
  if (bytes > SIZE_LIMIT_BYTES) {
    report(0, 'size', `${bytes} bytes: over the ${SIZE_LIMIT_BYTES}-byte (10 KB) function size quota`);
  }

  let tokens;
  try {
    tokens = tokenize(source);
  } catch (err) {
    report(err.line || 0, 'syntax', err.message);
    return found;
  }
  checkImports(tokens, source, report);
  checkNames(tokens, report);
  checkFunctions(tokens, report);
  return found.sort((a, b) => a.line - b.line);
}

function checkImports(tokens, source, report) {
  const firstLine = source.split('\n', 1)[0];
  if (firstLine !== IMPORT_LINE) {
    report(1, 'import', `the first line must be ${IMPORT_LINE} (the store is opened through it)`);
  }
  tokens.forEach((t, i) => {
    if (t.type !== 'name' || t.value !== 'import' || isProperty(tokens, i)) {
      return;
    }
    const next = tokens[i + 1];
    if (next && next.value === '(') {
      report(t.line, 'import', 'dynamic import() is not supported');
    } else if (t.line !== 1) {
      report(t.line, 'import', `one import only, on the first line: ${IMPORT_LINE}`);
    }
  });
}

function checkNames(tokens, report) {
  tokens.forEach((t, i) => {
    if (t.type !== 'name' || isProperty(tokens, i)) {
      return;
    }
    if (FORBIDDEN_NAMES.has(t.value)) {
      report(t.line, 'global', `${t.value}: ${FORBIDDEN_NAMES.get(t.value)}`);
    } else if (UNDOCUMENTED_KEYWORDS.has(t.value)) {
      report(t.line, 'syntax', `${t.value}: ${UNDOCUMENTED_KEYWORDS.get(t.value)}`);
    }
  });
}

// Brackets and function bodies, to place every `async` and `await`:
// - `async` only on a top-level function declaration ("async arguments and closures are not
//   supported");
// - `await` only in such a function's own body, and never inside the arguments of a call or
//   `new` ("await can be used inside async functions only"; the runtime refuses it in arguments,
//   which the page's example avoids by assigning the awaited value first);
// - no `for ... of` and no generators (not among the documented statements);
// - a top-level `handler` function, which is what CloudFront calls.
function checkFunctions(tokens, report) {
  const stack = []; // { kind: 'call'|'paren'|'for'|'bracket'|'block'|'template'|'function', async?, topLevel? }
  let pendingFunction = null; // a `function` seen, its body's '{' not yet
  let lastClosed = null; // the group the previous token closed, if it was ')'
  let handler = false;

  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    const prev = tokens[i - 1];
    const next = tokens[i + 1];
    const closed = lastClosed;
    lastClosed = null;

    if (t.type === 'name' && !isProperty(tokens, i)) {
      if (t.value === 'function') {
        const isAsync = !!prev && prev.type === 'name' && prev.value === 'async';
        pendingFunction = { async: isAsync, topLevel: stack.length === 0 };
        if (next && next.value === '*') {
          report(t.line, 'syntax', 'generator functions are not among the documented features');
        }
        if (stack.length === 0 && next && next.value === 'handler') {
          handler = true;
        }
      } else if (t.value === 'async') {
        const named = tokens[i + 2] && tokens[i + 2].type === 'name';
        if (!(stack.length === 0 && next && next.value === 'function' && named)) {
          report(t.line, 'async', ASYNC_ONLY_DECLARED);
        }
      } else if (t.value === 'await') {
        checkAwait(stack, t, report);
      } else if (t.value === 'of' && top(stack) && top(stack).kind === 'for') {
        report(t.line, 'syntax', 'for ... of is not among the documented statements (use for or for-in)');
      }
      continue;
    }
    if (t.type !== 'punct') {
      continue;
    }
    switch (t.value) {
      case '(':
        stack.push({ kind: parenKind(prev, pendingFunction) });
        break;
      case '[':
        stack.push({ kind: 'bracket' });
        break;
      case '${':
        stack.push({ kind: 'template' });
        break;
      case '{': {
        let body = null;
        if (pendingFunction) {
          body = pendingFunction;
          pendingFunction = null;
        } else if (prev && prev.value === '=>') {
          body = { async: false, topLevel: false };
        } else if (closed && closed.kind === 'call') {
          body = { async: false, topLevel: false }; // a method: name() { ... }
        }
        stack.push(body ? { kind: 'function', async: body.async, topLevel: body.topLevel } : { kind: 'block' });
        break;
      }
      case ')':
      case ']':
      case '}':
        lastClosed = stack.pop() || null;
        break;
      default:
        break;
    }
  }
  if (!handler) {
    report(0, 'handler', 'no top-level function handler(event): CloudFront calls handler');
  }
}

function checkAwait(stack, t, report) {
  for (let k = stack.length - 1; k >= 0; k--) {
    const group = stack[k];
    if (group.kind === 'call') {
      report(t.line, 'await', 'await inside the arguments of a call or new: assign the awaited value first');
      return;
    }
    if (group.kind === 'function') {
      if (!group.async || !group.topLevel) {
        report(t.line, 'await', 'await only in the body of a top-level async function');
      }
      return;
    }
  }
  report(t.line, 'await', 'await outside any function (top-level await is not supported)');
}

function parenKind(prev, pendingFunction) {
  if (pendingFunction) {
    return 'params';
  }
  if (!prev) {
    return 'paren';
  }
  if (prev.type === 'name') {
    if (prev.value === 'for') {
      return 'for';
    }
    return NOT_A_CALLEE.has(prev.value) ? 'paren' : 'call';
  }
  return prev.value === ')' || prev.value === ']' ? 'call' : 'paren';
}

function top(stack) {
  return stack[stack.length - 1];
}

// `x.name` (or `x?.name`): a property, not the global of that name.
function isProperty(tokens, i) {
  const prev = tokens[i - 1];
  return !!prev && prev.type === 'punct' && (prev.value === '.' || prev.value === '?.');
}

/** Tokens of `source`: names, numbers, strings, templates, regex literals and punctuators, with their line. */
export function tokenize(source) {
  const tokens = [];
  const braces = []; // '{' or '${' still open, to know where a template resumes
  let line = 1;
  let i = 0;
  const fail = (message) => {
    const err = new Error(`line ${line}: ${message}`);
    err.line = line;
    throw err;
  };
  const push = (type, value) => tokens.push({ type, value, line });

  // Scans template text from i (after '`' or after the '}' closing a '${'); pushes '${' or ends.
  const templateText = () => {
    while (i < source.length) {
      const c = source[i];
      if (c === '\\') {
        i += 2;
      } else if (c === '`') {
        i++;
        return;
      } else if (c === '$' && source[i + 1] === '{') {
        push('punct', '${');
        braces.push('${');
        i += 2;
        return;
      } else {
        if (c === '\n') line++;
        i++;
      }
    }
    fail('unterminated template literal');
  };

  while (i < source.length) {
    const c = source[i];
    const d = source[i + 1];
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) {
      i++;
    } else if (c === '/' && d === '/') {
      while (i < source.length && source[i] !== '\n') i++;
    } else if (c === '/' && d === '*') {
      const end = source.indexOf('*/', i + 2);
      if (end === -1) fail('unterminated comment');
      line += source.slice(i, end).split('\n').length - 1;
      i = end + 2;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < source.length && source[j] !== c) {
        if (source[j] === '\n') fail('unterminated string');
        j += source[j] === '\\' ? 2 : 1;
      }
      if (j >= source.length) fail('unterminated string');
      push('string', source.slice(i, j + 1));
      i = j + 1;
    } else if (c === '`') {
      push('template', '`');
      i++;
      templateText();
    } else if (/[A-Za-z_$]/.test(c)) {
      let j = i + 1;
      while (j < source.length && /[\w$]/.test(source[j])) j++;
      push('name', source.slice(i, j));
      i = j;
    } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(d))) {
      let j = i + 1;
      while (j < source.length && /[\w.]/.test(source[j])) j++;
      push('number', source.slice(i, j));
      i = j;
    } else if (c === '/' && startsRegex(tokens[tokens.length - 1])) {
      let j = i + 1;
      let inClass = false;
      while (j < source.length && (inClass || source[j] !== '/')) {
        if (source[j] === '\n') fail('unterminated regular expression');
        if (source[j] === '\\') j++;
        else if (source[j] === '[') inClass = true;
        else if (source[j] === ']') inClass = false;
        j++;
      }
      j++;
      while (j < source.length && /[a-z]/.test(source[j])) j++;
      push('regex', source.slice(i, j));
      i = j;
    } else if (source.startsWith('=>', i) || source.startsWith('?.', i)) {
      push('punct', source.slice(i, i + 2));
      i += 2;
    } else if (source.startsWith('...', i)) {
      push('punct', '...');
      i += 3;
    } else if (c === '{') {
      braces.push('{');
      push('punct', '{');
      i++;
    } else if (c === '}') {
      push('punct', '}');
      i++;
      if (braces.pop() === '${') {
        templateText();
      }
    } else {
      push('punct', c);
      i++;
    }
  }
  return tokens;
}

function startsRegex(prev) {
  if (!prev) {
    return true;
  }
  if (prev.type === 'name') {
    return REGEX_AFTER.has(prev.value);
  }
  if (prev.type === 'punct') {
    return prev.value !== ')' && prev.value !== ']';
  }
  return false; // after a number, string, template or regex: a division
}
