"""A fair held-out set for the assistant's retrieval: questions reworded by hand, and questions it cannot answer.

An indexed question finds itself at cosine 1, so scoring retrieval on the index's own questions says
nothing. Each pair below is (a rewording written for this project, the corpus question it asks). A
reworded question shares few words with its original (by design: rewordings that keep the words are
what TF-IDF already handles). The reply is right when the nearest indexed question has an answer of the
original (two corpus questions may share their answers). Unanswerable questions are the questions of
HELD_OUT_CATEGORIES, left out of the index: for them the assistant should say it does not know (or let a
GPT answer) rather than reply with the nearest stranger. The first half of each list (even positions) is
the validation half that tunes the threshold; the other half is for the test.
"""

HELD_OUT_CATEGORIES = ("sports", "history")

PARAPHRASES = [
    # tech_support: the customer-service core
    ("my pc gets really hot", "My system is overheating."),
    ("the laptop fan is loud and the case is burning", "My system is overheating."),
    ("nothing happens when i press the power button", "My computer won't turn on."),
    ("my machine refuses to boot", "My computer won't turn on."),
    ("the cursor does not move when i move the mouse", "My mouse is not responding."),
    ("my mouse stopped working", "My mouse is not responding."),
    ("the display stays dark", "My laptop screen is black."),
    ("i see nothing on my notebook's screen", "My laptop screen is black."),
    ("no audio comes out of my speakers", "I can't hear any sound."),
    ("the sound is gone", "I can't hear any sound."),
    ("i cannot get online", "My internet is not working."),
    ("the wifi connection is down", "My internet is not working."),
    ("the camera is not found by my computer", "My webcam isn't detected."),
    ("video calls say there is no camera", "My webcam isn't detected."),
    ("i can't remember my login", "I forgot my password."),
    ("how do i reset a lost password", "I forgot my password."),
    ("nothing comes out of the printer", "My printer is not printing."),
    ("my documents won't print", "My printer is not printing."),
    ("the monitor keeps blinking", "My screen is flickering."),
    ("my display flashes on and off", "My screen is flickering."),
    # computers
    ("explain what a computer is", "What is a computer?"),
    ("who built the first computers", "Who invented computers?"),
    ("what does a cpu chip do", "What is a microprocessor?"),
    ("what is an OS", "What is an operating system?"),
    ("is a mac better than a windows pc", "Which is better Windows or macOS?"),
    ("tell me how computers work", "How does a computer work?"),
    # money
    ("what is cash", "what is money"),
    ("how much are you paid", "how much do you earn"),
    ("what do you cost", "how much do you charge"),
    ("tell me about the share market", "what is the stock market"),
    ("where would you invest", "what is your favorite investment"),
    # food
    ("can you have a meal", "do you eat"),
    ("what should i have for dinner", "what is good to eat?"),
    ("would a machine ever be able to have food", "will robots ever be able to eat?"),
    ("can robots become intoxicated", "can a robot get drunk?"),
    # greetings and conversations
    ("hey there", "Hi"),
    ("pleased to meet you", "Nice to meet you."),
    ("what's new with you", "What's up?"),
    ("how have you been", "How are you doing?"),
    ("good morning, how is it going", "Good morning, how are you?"),
    ("what book do you like best", "What is your favorite book?"),
    ("may i ask you something", "Can I ask you a question?"),
    ("what do you do for fun", "What are your hobbies?"),
    # ai and the bot itself
    ("what does artificial intelligence mean", "What is AI?"),
    ("are you conscious", "Are you sentient?"),
    ("which programming language were you made with", "What language are you written in?"),
    ("what is a chatbot", "What is a chat bot"),
    ("how old are you", "What is your age"),
    ("where do you live", "Where are you from"),
    ("who made you", "Who is your father"),
    ("who do you work for", "Who is your boss"),
    ("what do you like to do in your free time", "What is your favorite hobby"),
    ("which language do you prefer to program in", "What is your favorite programming language"),
    # coding
    ("show me how to sort a list", "can you write a sorting algorithm?"),
    ("implement bubblesort", "can you write bubble sort?"),
    ("create a rest service", "can you build a REST API?"),
    ("write a dockerfile for my app", "can you write a Dockerfile?"),
    ("compute fibonacci numbers", "can you write a Fibonacci function?"),
    ("a factorial with recursion", "do a recursive factorial"),
    ("how do i join two tables in sql", "write a SQL query with join"),
    # emotion and psychology
    ("does anything scare you", "What is your fear"),
    ("what puts you in a bad mood", "What makes you mad"),
    ("do you ever feel alone", "Do you ever get lonely"),
    ("can you feel anything", "Do you feel emotions"),
    ("do you get bored sometimes", "Do you ever get bored"),
    ("you are very rude", "you are mean"),
    ("you are not very clever", "you are not smart"),
    # literature, movies, politics, science, humor, health
    ("who is the author of the hobbit", "who wrote the hobbit"),
    ("have you read any books", "have you ever read a book"),
    ("who is spiderman", "what is spiderman"),
    ("what is the government", "what is a government"),
    ("explain capitalism to me", "what is capitalism"),
    ("what is water made of", "what is h2o"),
    ("how far away is the moon", "how far is the moon"),
    ("tell me something funny", "Tell me a joke"),
    ("are you feeling well", "How is your health?"),
    # trivia
    ("which president was number 37", "Who was the 37th President of the United States?"),
    ("when was JFK shot", "What year was President John F. Kennedy assassinated?"),
    ("what was the first satellite called", "What was the name of the first artificial Earth satellite?"),
    ("what did abyssinia become", "Which African country was formerly known as Abyssinia?"),
    ("who is the author of winnie the pooh", "Which author wrote the 'Winnie-the-Pooh' books?"),
    ("what is lady gaga's real name", "Which singer’s real name is Stefani Joanne Angelina Germanotta?"),
    ("where is orly airport", "In which European city would you find Orly airport?"),
]
