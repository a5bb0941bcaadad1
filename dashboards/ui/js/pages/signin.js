// Sign in with username and password; the token is kept for this tab's session.

import { signIn } from '../api.js';
import { errorBox, h } from '../format.js';

export function signinPage(root, { query }) {
  const username = h('input', { name: 'username', id: 'username', autocomplete: 'username', required: true, autofocus: true });
  const password = h('input', { name: 'password', id: 'password', type: 'password', autocomplete: 'current-password', required: true });
  const problem = h('div');
  const submit = h('button', { type: 'submit', class: 'primary', id: 'sign-in' }, 'Sign in');
  const form = h('form', {},
    h('label', {}, 'Username', username),
    h('label', {}, 'Password', password),
    problem,
    submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    problem.replaceChildren();
    try {
      await signIn(username.value.trim(), password.value);
      const next = query.get('next');
      location.hash = next && next.startsWith('/') ? `#${next}` : '#/jobs';
    } catch (error) {
      problem.replaceChildren(errorBox(error.status === 401 ? new Error('Wrong username or password.') : error));
      submit.disabled = false;
    }
  });
  root.append(h('section', { class: 'panel signin' }, h('h1', {}, 'Sign in to Drover'), form));
  username.focus();
}
